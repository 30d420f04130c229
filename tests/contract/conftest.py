"""The storage ports twice: in-memory fakes, and the real adapters on Azurite in tables of the test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import suppress
from functools import cached_property
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from devhost.azurite import AzuriteProcess
from shared.adapters.lifecycle_queue import QueueLifecyclePublisher
from shared.domain.clock import Clock, SystemClock
from shared.domain.partition import RowId
from shared.storage.account_store import AccountStore
from shared.storage.audit_log import TableAuditLog
from shared.storage.clock_offset import TableClockOffsetStore
from shared.storage.due_index import TableDueIndex
from shared.storage.layout import ACCOUNTS_TABLE, account_row_key
from shared.storage.message_index import TableMessageIndex
from shared.storage.rejection_store import TableRejectionStore
from shared.storage.sandbox_gateway import SandboxGateway
from shared.storage.tables import TableStorage
from shared.storage.webhook_ledger import TableWebhookLedger
from tests.fakes.memory import (
    MemoryAccountStore,
    MemoryAuditLog,
    MemoryClockOffsetStore,
    MemoryDueIndex,
    MemoryLifecyclePublisher,
    MemoryMessageIndex,
    MemoryRejectionStore,
    MemorySandboxGateway,
    MemoryWebhookLedger,
)
from tests.support.lifecycle_events import lifecycle_messages


class IsolatedTables(TableStorage):
    """Azurite's tables under names of this test's own, so counts and orders are exact in a shared emulator."""

    def __init__(self, connection_string: str) -> None:
        super().__init__(connection_string)
        self._suffix = uuid.uuid4().hex[:12]
        self._created: list[str] = []

    def table(self, name: str) -> TableClient:
        isolated = f"{name}{self._suffix}"
        if isolated not in self._created:
            with suppress(ResourceExistsError):
                self.service.create_table(isolated)
            self._created.append(isolated)
        return super().table(isolated)

    def drop(self) -> None:
        for name in self._created:
            with suppress(ResourceNotFoundError):
                self.service.delete_table(name)


class MemoryBackend:
    name = "memory"

    @cached_property
    def accounts(self) -> MemoryAccountStore:
        return MemoryAccountStore()

    @cached_property
    def due(self) -> MemoryDueIndex:
        return MemoryDueIndex()

    @cached_property
    def audit(self) -> MemoryAuditLog:
        return MemoryAuditLog()

    @cached_property
    def rejections(self) -> MemoryRejectionStore:
        return MemoryRejectionStore()

    @cached_property
    def gateway(self) -> MemorySandboxGateway:
        return MemorySandboxGateway()

    @cached_property
    def messages(self) -> MemoryMessageIndex:
        return MemoryMessageIndex()

    @cached_property
    def clock_offsets(self) -> MemoryClockOffsetStore:
        return MemoryClockOffsetStore()

    def webhook_ledger(self, clock: Clock) -> MemoryWebhookLedger:
        return MemoryWebhookLedger(clock=clock)

    @cached_property
    def publisher(self) -> MemoryLifecyclePublisher:
        return MemoryLifecyclePublisher()

    def lifecycle_messages(self) -> list[str]:
        return list(self.publisher.messages)

    def rewrite_account_row(self, account_id: str, identity: RowId) -> None:
        self.accounts.rewrite_row(account_id, identity)


class AzuriteBackend:
    name = "azurite"

    def __init__(self, tables: IsolatedTables, clock: Clock, connection_string: str) -> None:
        self.tables = tables
        self._clock = clock
        self._connection_string = connection_string
        self._queue_name = f"lifecycle-{uuid.uuid4().hex[:12]}"

    @cached_property
    def accounts(self) -> AccountStore:
        return AccountStore(self.tables)

    @cached_property
    def due(self) -> TableDueIndex:
        return TableDueIndex(self.tables)

    @cached_property
    def audit(self) -> TableAuditLog:
        return TableAuditLog(self.tables)

    @cached_property
    def rejections(self) -> TableRejectionStore:
        return TableRejectionStore(self.tables)

    @cached_property
    def gateway(self) -> SandboxGateway:
        return SandboxGateway(self.tables, clock=self._clock)

    @cached_property
    def messages(self) -> TableMessageIndex:
        return TableMessageIndex(self.tables)

    @cached_property
    def clock_offsets(self) -> TableClockOffsetStore:
        return TableClockOffsetStore(self.tables)

    def webhook_ledger(self, clock: Clock) -> TableWebhookLedger:
        return TableWebhookLedger(self.tables, clock=clock)

    @cached_property
    def publisher(self) -> QueueLifecyclePublisher:
        return QueueLifecyclePublisher(self._connection_string, self._queue_name)

    def lifecycle_messages(self) -> list[str]:
        return lifecycle_messages(self._connection_string, self._queue_name)

    def rewrite_account_row(self, account_id: str, identity: RowId) -> None:
        table = self.tables.table(ACCOUNTS_TABLE)
        table.update_entity(table.get_entity(account_id, account_row_key(identity)))


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Each contract test runs once on the fakes and once on the real adapters (Azurite started only for those)."""
    if request.param == "memory":
        yield MemoryBackend()
        return
    azurite: AzuriteProcess = request.getfixturevalue("azurite")
    tables = IsolatedTables(azurite.connection_string)
    try:
        yield AzuriteBackend(tables, SystemClock(), azurite.connection_string)
    finally:
        tables.drop()

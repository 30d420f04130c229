"""The account partition as a unit of work: read in one query, written in ETag-checked transactions."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode
from pydantic import BaseModel

from shared.domain.errors import ConcurrencyError
from shared.domain.model import Account, Alert, Charge, PaymentMethod, ProcessedEvent, Subscription
from shared.domain.outbox import LifecycleEvent, Notification
from shared.storage.layout import ACCOUNTS_TABLE, ROOT_ROW_KEY, from_entity, row_key, row_key_for, to_entity
from shared.storage.tables import TableStorage, storage_errors

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
MAX_TRANSACTION_OPERATIONS = 100
# A queue message lives at most 7 days; a repeat older than a month is not a delivery retry any more.
PROCESSED_EVENT_RETENTION = timedelta(days=30)
_CONFLICT_STATUSES = {409, 412}


@dataclass
class AccountPartition:
    """Everything stored for one account, plus the changes a service made to it and has not committed yet."""

    account_id: str
    account: Account | None = None
    version: int = 0
    rows: dict[str, BaseModel] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)
    _changed: dict[str, BaseModel | None] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return ROOT_ROW_KEY in self.etags

    @property
    def has_changes(self) -> bool:
        return bool(self._changed) or (self.account is not None and not self.exists)

    def all(self, model_type: type[M]) -> list[M]:
        return [row for row in self.rows.values() if isinstance(row, model_type)]

    def get(self, model_type: type[M], identifier: str) -> M | None:
        row = self.rows.get(row_key(model_type, identifier))
        return row if isinstance(row, model_type) else None

    @property
    def payment_methods(self) -> list[PaymentMethod]:
        return self.all(PaymentMethod)

    @property
    def subscriptions(self) -> list[Subscription]:
        return self.all(Subscription)

    @property
    def charges(self) -> list[Charge]:
        return self.all(Charge)

    @property
    def alerts(self) -> list[Alert]:
        return self.all(Alert)

    @property
    def notifications(self) -> list[Notification]:
        return self.all(Notification)

    @property
    def pending_events(self) -> list[LifecycleEvent]:
        return self.all(LifecycleEvent)

    def has_processed(self, event_id: str) -> ProcessedEvent | None:
        return self.get(ProcessedEvent, event_id)

    def set_account(self, account: Account) -> None:
        if account != self.account:
            self.account = account
            self._changed[ROOT_ROW_KEY] = account

    def put(self, *models: BaseModel) -> None:
        """Stage new or changed rows; rows equal to what is stored are not written again."""
        for model in models:
            if isinstance(model, Account):
                self.set_account(model)
                continue
            key = row_key_for(model)
            if self.rows.get(key) != model:
                self.rows[key] = model
                self._changed[key] = model

    def record_processed(self, marker: ProcessedEvent) -> None:
        """Stage an event's processed marker (stage it last) and drop markers older than the replay window."""
        horizon = marker.processed_at - PROCESSED_EVENT_RETENTION
        self.delete(*(old for old in self.all(ProcessedEvent) if old.processed_at < horizon))
        self.put(marker)

    def delete(self, *models: BaseModel) -> None:
        for model in models:
            key = row_key_for(model)
            if key in self.rows:
                del self.rows[key]
                self._changed[key] = None

    def staged(self) -> list[tuple[str, BaseModel | None]]:
        return list(self._changed.items())

    def mark_committed(self, etags: dict[str, str]) -> None:
        for key, value in self._changed.items():
            if value is None:
                self.etags.pop(key, None)
        self.etags.update(etags)
        self._changed.clear()


class AccountStore:
    """Reads and writes account partitions of the `accounts` table."""

    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(ACCOUNTS_TABLE)

    def load(self, account_id: str) -> AccountPartition:
        """Read the whole partition in one query (one round trip per 1,000 rows)."""
        partition = AccountPartition(account_id=account_id)
        with storage_errors():
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": account_id})
            for entity in entities:
                model = from_entity(entity)
                key = entity["RowKey"]
                partition.etags[key] = str(entity.metadata["etag"])
                if isinstance(model, Account):
                    partition.account = model
                    partition.version = int(entity.get("Version", 0))
                else:
                    partition.rows[key] = model
        return partition

    def commit(self, partition: AccountPartition) -> None:
        """Write the staged changes: the root row's ETag guards the first transaction against any other writer.

        More than 100 operations go out in several transactions in the order they were staged; a service that
        stages its processed-event marker last is therefore completed, not repeated, by a retry.
        """
        if not partition.has_changes:
            return
        if partition.account is None:
            raise ValueError("an account partition needs its account row before anything is written to it")
        operations = [self._root_operation(partition), *self._row_operations(partition)]
        etags: dict[str, str] = {}
        with storage_errors():
            for start in range(0, len(operations), MAX_TRANSACTION_OPERATIONS):
                chunk = operations[start : start + MAX_TRANSACTION_OPERATIONS]
                try:
                    results = self._table.submit_transaction(chunk)
                except TableTransactionError as error:
                    if error.status_code in _CONFLICT_STATUSES:
                        raise ConcurrencyError(f"account {partition.account_id} changed meanwhile") from error
                    raise
                for operation, result in zip(chunk, results, strict=True):
                    if operation[0] != "delete" and "etag" in result:
                        etags[operation[1]["RowKey"]] = result["etag"]
        partition.version += 1
        partition.mark_committed(etags)

    def _root_operation(self, partition: AccountPartition) -> tuple[Any, ...]:
        assert partition.account is not None
        entity = to_entity(partition.account_id, partition.account, Version=partition.version + 1)
        if not partition.exists:
            return ("create", entity)
        return (
            "update",
            entity,
            {
                "mode": UpdateMode.REPLACE,
                "etag": partition.etags[ROOT_ROW_KEY],
                "match_condition": MatchConditions.IfNotModified,
            },
        )

    def _row_operations(self, partition: AccountPartition) -> Iterable[tuple[Any, ...]]:
        for key, model in partition.staged():
            if key == ROOT_ROW_KEY:
                continue
            etag = partition.etags.get(key)
            guard = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
            if model is None:
                if etag is not None:
                    yield ("delete", {"PartitionKey": partition.account_id, "RowKey": key}, guard)
            elif etag is None:
                yield ("create", to_entity(partition.account_id, model))
            else:
                yield ("update", to_entity(partition.account_id, model), {"mode": UpdateMode.REPLACE, **guard})


def with_fresh_partition(
    store: AccountStore, account_id: str, change: Callable[[AccountPartition], T], *, attempts: int = 5
) -> T:
    """Run `change` on a freshly read partition and commit; on a lost race read again and redo it."""
    for attempt in range(1, attempts + 1):
        partition = store.load(account_id)
        result = change(partition)
        try:
            store.commit(partition)
        except ConcurrencyError:
            if attempt == attempts:
                raise
            continue
        return result
    raise AssertionError("unreachable")

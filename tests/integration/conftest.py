from __future__ import annotations

import uuid

import pytest

from devhost.azurite import AzuriteProcess
from shared.storage.account_store import AccountStore
from shared.storage.due_index import TableDueIndex
from shared.storage.tables import RequestCounter, TableStorage


@pytest.fixture
def request_counter() -> RequestCounter:
    return RequestCounter()


@pytest.fixture
def table_storage(azurite: AzuriteProcess, request_counter: RequestCounter) -> TableStorage:
    storage = TableStorage(azurite.connection_string, request_hook=request_counter)
    storage.ensure_tables()
    request_counter.reset()
    return storage


@pytest.fixture
def store(table_storage: TableStorage) -> AccountStore:
    return AccountStore(table_storage)


@pytest.fixture
def due_index(table_storage: TableStorage) -> TableDueIndex:
    return TableDueIndex(table_storage)


@pytest.fixture
def account_id() -> str:
    """A fresh account per test, so tests share one Azurite without seeing each other's rows."""
    return f"acc-{uuid.uuid4().hex[:12]}"

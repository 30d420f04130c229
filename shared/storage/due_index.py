"""Table `due`: when to look at an account again, read by the timer so a run costs what is due, not what exists.

Entries are sharded over DUE_SHARDS partitions by a stable hash of the account id (no single partition gets hot) and
time-prefixed (see layout.py), so one range query per shard returns exactly the entries at or before a moment; `due`
merges the shards oldest first. Entries are written before the state change that needs them, so a crash leaves at
worst an entry that finds nothing to do; an entry is removed only after its account was handled. Times are kept to
the second, rounded up: an entry never fires before its moment.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Iterable, Iterator
from datetime import datetime

from azure.core.exceptions import ResourceNotFoundError

from shared.services.ports import DueEntry, whole_second_up
from shared.storage.layout import (
    DUE_SHARDS,
    DUE_TABLE,
    due_row_key,
    due_row_key_upper_bound,
    due_shard,
    due_shard_of,
    parse_due_row_key,
)
from shared.storage.tables import TableStorage, storage_errors

# Table Storage returns at most 1,000 entities per page; each page is one round trip.
DEFAULT_PAGE_SIZE = 1000
MAX_TRANSACTION_OPERATIONS = 100


def due_entity_keys(entry: DueEntry) -> tuple[str, str]:
    return due_shard_of(entry.account_id), due_row_key(entry.account_id, entry.due_at)


class TableDueIndex:
    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(DUE_TABLE)

    def schedule(self, account_id: str, due_at: datetime) -> DueEntry:
        entry = DueEntry(account_id, whole_second_up(due_at))
        partition_key, row_key = due_entity_keys(entry)
        with storage_errors():
            self._table.upsert_entity({"PartitionKey": partition_key, "RowKey": row_key})
        return entry

    def schedule_many(self, entries: Iterable[DueEntry]) -> list[DueEntry]:
        """Upsert the entries in one entity-group transaction per shard (of at most 100); repeats are dropped first,
        as a transaction may name each entity only once."""
        by_keys = {due_entity_keys(e): e for e in (DueEntry(e.account_id, whole_second_up(e.due_at)) for e in entries)}
        shards: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for partition_key, row_key in by_keys:
            operation = ("upsert", {"PartitionKey": partition_key, "RowKey": row_key})
            shards.setdefault(partition_key, []).append(operation)
        with storage_errors():
            for operations in shards.values():
                for start in range(0, len(operations), MAX_TRANSACTION_OPERATIONS):
                    self._table.submit_transaction(operations[start : start + MAX_TRANSACTION_OPERATIONS])
        return list(by_keys.values())

    def due(self, now: datetime, *, page_size: int = DEFAULT_PAGE_SIZE, limit: int | None = None) -> Iterator[DueEntry]:
        """Entries due at or before `now`, oldest first across shards: one query per shard, paged lazily."""
        upper = due_row_key_upper_bound(now)
        shards = [self._due_in_shard(shard, upper, page_size) for shard in range(DUE_SHARDS)]
        merged = heapq.merge(*shards, key=lambda entry: (entry.due_at, entry.account_id))
        yield from itertools.islice(merged, limit)

    def _due_in_shard(self, shard: int, upper: str, page_size: int) -> Iterator[DueEntry]:
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and RowKey le @upper",
                parameters={"pk": due_shard(shard), "upper": upper},
                select=["RowKey"],
                results_per_page=page_size,
            )
            for row in rows:
                account_id, due_at = parse_due_row_key(str(row["RowKey"]))
                yield DueEntry(account_id, due_at)

    def remove(self, entry: DueEntry) -> None:
        partition_key, row_key = due_entity_keys(entry)
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(partition_key, row_key)

"""Table `due`: when to look at an account again, read by the retention sweeps so a pass costs what is due.

Entries are sharded over RETENTION_SHARDS partitions by a stable hash of the account id (no single partition gets
hot) and time-prefixed (see layout.py), so one range query per shard returns exactly the entries at or before a
moment. Entries are written before the state change that needs them, so a crash leaves at worst an entry that finds
nothing to do; an entry is removed only after its account was handled. Times are kept to the second, rounded up: an
entry never fires before its moment.

The shard count may change between deployments: the table remembers the largest count it was ever written under
(row `meta/shard-count`, raised by the timer's firing), sweeps cover that many, and an entry read from the index is
removed from where it was read, so nothing written under an older count is stranded. Lower the count only after the
larger one has seen a timer firing (with the default schedule: 15 minutes).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.services.ports import DueEntry, ShardProgress, whole_second_up
from shared.storage.layout import (
    DUE_META_PARTITION,
    DUE_PROGRESS_PARTITION,
    DUE_SHARD_COUNT_ROW,
    DUE_SHARDS,
    DUE_TABLE,
    due_row_key,
    due_row_key_upper_bound,
    due_shard,
    due_shard_index,
    parse_due_row_key,
)
from shared.storage.tables import TableStorage, storage_errors

# Table Storage returns at most 1,000 entities per page; each page is one round trip.
DEFAULT_PAGE_SIZE = 1000
MAX_TRANSACTION_OPERATIONS = 100


class TableDueIndex:
    def __init__(self, storage: TableStorage, *, shards: int = DUE_SHARDS) -> None:
        self._table = storage.table(DUE_TABLE)
        self._shards = shards

    def entity_keys(self, entry: DueEntry) -> tuple[str, str]:
        return due_entity_keys(entry, self._shards)

    def _placed(self, account_id: str, due_at: datetime) -> DueEntry:
        return DueEntry(account_id, whole_second_up(due_at), shard=due_shard_index(account_id, self._shards))

    def schedule(self, account_id: str, due_at: datetime) -> DueEntry:
        entry = self._placed(account_id, due_at)
        partition_key, row_key = self.entity_keys(entry)
        with storage_errors():
            self._table.upsert_entity({"PartitionKey": partition_key, "RowKey": row_key}, mode=UpdateMode.REPLACE)
        return entry

    def schedule_many(self, entries: Iterable[DueEntry]) -> list[DueEntry]:
        """Upsert the entries in one entity-group transaction per shard (of at most 100); repeats are dropped first,
        as a transaction may name each entity only once."""
        placed = (self._placed(e.account_id, e.due_at) for e in entries)
        by_keys = {self.entity_keys(e): e for e in placed}
        shards: dict[str, list[tuple[str, dict[str, str], dict[str, UpdateMode]]]] = {}
        for partition_key, row_key in by_keys:
            operation = ("upsert", {"PartitionKey": partition_key, "RowKey": row_key}, {"mode": UpdateMode.REPLACE})
            shards.setdefault(partition_key, []).append(operation)
        with storage_errors():
            for operations in shards.values():
                for start in range(0, len(operations), MAX_TRANSACTION_OPERATIONS):
                    self._table.submit_transaction(operations[start : start + MAX_TRANSACTION_OPERATIONS])
        return list(by_keys.values())

    def due(self, now: datetime, *, page_size: int = DEFAULT_PAGE_SIZE, limit: int | None = None) -> Iterator[DueEntry]:
        """Entries due at or before `now`, oldest first across shards: one query per shard, paged lazily."""
        shards = [self.due_in_shard(shard, now, page_size=page_size) for shard in range(self.shards_to_sweep())]
        merged = heapq.merge(*shards, key=lambda entry: (entry.due_at, entry.account_id))
        yield from itertools.islice(merged, limit)

    def due_in_shard(self, shard: int, now: datetime, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[DueEntry]:
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and RowKey le @upper",
                parameters={"pk": due_shard(shard), "upper": due_row_key_upper_bound(now)},
                select=["RowKey", "SetAside"],
                results_per_page=page_size,
            )
            for row in rows:
                account_id, due_at = parse_due_row_key(str(row["RowKey"]))
                set_aside = row.get("SetAside")
                yield DueEntry(account_id, due_at, shard=shard, set_aside=str(set_aside) if set_aside else None)

    def remove(self, entry: DueEntry) -> None:
        partition_key, row_key = self.entity_keys(entry)
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(partition_key, row_key)

    def set_aside(self, entries: Sequence[DueEntry], rejection_id: str) -> None:
        with storage_errors():
            for entry in entries:
                partition_key, row_key = self.entity_keys(entry)
                with contextlib.suppress(ResourceNotFoundError):
                    # Merge into the entry only if it is still there: a consumed entry must not come back.
                    self._table.update_entity(
                        {"PartitionKey": partition_key, "RowKey": row_key, "SetAside": rejection_id},
                        mode=UpdateMode.MERGE,
                    )

    def shards_to_sweep(self) -> int:
        """One read; and when this deployment's count is larger than the recorded one, one write to raise it."""
        with storage_errors():
            try:
                row = self._table.get_entity(DUE_META_PARTITION, DUE_SHARD_COUNT_ROW)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    self._table.create_entity(
                        {"PartitionKey": DUE_META_PARTITION, "RowKey": DUE_SHARD_COUNT_ROW, "Count": self._shards}
                    )
                return self._shards
            recorded = int(row["Count"])
            if recorded < self._shards:
                row["Count"] = self._shards
                # Only ever raised; a concurrent firing raising it as well loses nothing.
                with contextlib.suppress(ResourceModifiedError):
                    self._table.update_entity(
                        row,
                        mode=UpdateMode.REPLACE,
                        etag=row.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
        return max(recorded, self._shards)

    def record_progress(self, progress: ShardProgress) -> None:
        with storage_errors():
            self._table.upsert_entity(
                {
                    "PartitionKey": DUE_PROGRESS_PARTITION,
                    "RowKey": due_shard(progress.shard),
                    "ReviewedAt": progress.reviewed_at.astimezone(UTC),
                    "Accounts": progress.accounts,
                    "MaxLagSeconds": progress.max_lag_seconds,
                    "MeanLagSeconds": progress.mean_lag_seconds,
                },
                mode=UpdateMode.REPLACE,
            )

    def progress(self) -> list[ShardProgress]:
        with storage_errors():
            rows = list(self._table.query_entities("PartitionKey eq @pk", parameters={"pk": DUE_PROGRESS_PARTITION}))
        return [
            ShardProgress(
                shard=int(str(row["RowKey"]).removeprefix("due-")),
                reviewed_at=row["ReviewedAt"],
                accounts=int(row["Accounts"]),
                max_lag_seconds=float(row["MaxLagSeconds"]),
                mean_lag_seconds=float(row["MeanLagSeconds"]),
            )
            for row in rows
        ]


def due_entity_keys(entry: DueEntry, shards: int = DUE_SHARDS) -> tuple[str, str]:
    """The keys of an entry written under `shards` shards (bench seeding writes entries in bulk by these)."""
    shard = entry.shard if entry.shard is not None else due_shard_index(entry.account_id, shards)
    return due_shard(shard), due_row_key(entry.account_id, entry.due_at)

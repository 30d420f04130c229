"""When to look at an account again: an index read by the timer, so a run costs what is due, not what exists.

Table `due`: PartitionKey `due-NN` (NN = a stable hash of the account id over SHARDS shards, so no single
partition gets hot), RowKey `<UTC time as YYYYMMDDTHHMMSSZ>|<account id>`. One range query per shard returns
exactly the entries at or before a moment; `due` merges the shards oldest first. Entries are written before the
state change that needs them, so a crash leaves at worst an entry that finds nothing to do; an entry is removed only
after its account was handled. Times are kept to the second, rounded up: an entry never fires before its moment.
"""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceNotFoundError

from shared.storage.layout import DUE_TABLE
from shared.storage.tables import TableStorage, storage_errors

SHARDS = 8
# Table Storage returns at most 1,000 entities per page; each page is one round trip.
DEFAULT_PAGE_SIZE = 1000
_TIME_FORMAT = "%Y%m%dT%H%M%SZ"


def shard_of(account_id: str) -> str:
    digest = hashlib.sha256(account_id.encode()).digest()
    return f"due-{digest[0] % SHARDS:02d}"


@dataclass(frozen=True)
class DueEntry:
    account_id: str
    due_at: datetime

    @property
    def partition_key(self) -> str:
        return shard_of(self.account_id)

    @property
    def row_key(self) -> str:
        return f"{self.due_at.astimezone(UTC).strftime(_TIME_FORMAT)}|{self.account_id}"


class DueIndex:
    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(DUE_TABLE)

    def schedule(self, account_id: str, due_at: datetime) -> DueEntry:
        entry = DueEntry(account_id, whole_second_up(due_at))
        with storage_errors():
            self._table.upsert_entity({"PartitionKey": entry.partition_key, "RowKey": entry.row_key})
        return entry

    def due(self, now: datetime, *, page_size: int = DEFAULT_PAGE_SIZE, limit: int | None = None) -> Iterator[DueEntry]:
        """Entries due at or before `now`, oldest first across shards: one query per shard, paged lazily."""
        upper = f"{now.astimezone(UTC).strftime(_TIME_FORMAT)}|~"
        shards = [self._due_in_shard(shard, upper, page_size) for shard in range(SHARDS)]
        merged = heapq.merge(*shards, key=lambda entry: (entry.due_at, entry.account_id))
        yield from itertools.islice(merged, limit)

    def _due_in_shard(self, shard: int, upper: str, page_size: int) -> Iterator[DueEntry]:
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and RowKey le @upper",
                parameters={"pk": f"due-{shard:02d}", "upper": upper},
                select=["RowKey"],
                results_per_page=page_size,
            )
            for row in rows:
                stamp, _, account_id = str(row["RowKey"]).partition("|")
                yield DueEntry(account_id, datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=UTC))

    def remove(self, entry: DueEntry) -> None:
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(entry.partition_key, entry.row_key)


def whole_second_up(moment: datetime) -> datetime:
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment

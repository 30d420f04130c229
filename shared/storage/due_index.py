"""When to look at an account again: an index read by the timer, so a run costs what is due, not what exists.

Table `due`: PartitionKey `due-NN` (NN = a stable hash of the account id over SHARDS shards, so no single
partition gets hot), RowKey `<UTC time as YYYYMMDDTHHMMSSZ>|<account id>`. One range query per shard returns
exactly the entries at or before a moment. Entries are written before the state change that needs them, so a
crash leaves at worst an entry that finds nothing to do; an entry is removed only after its account was handled.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError

from shared.storage.layout import DUE_TABLE
from shared.storage.tables import TableStorage, storage_errors

SHARDS = 8
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
        entry = DueEntry(account_id, due_at.replace(microsecond=0))
        with storage_errors():
            self._table.upsert_entity({"PartitionKey": entry.partition_key, "RowKey": entry.row_key})
        return entry

    def due(self, now: datetime) -> Iterator[DueEntry]:
        """Entries due at or before `now`, oldest first within each shard: one query per shard."""
        upper = f"{now.astimezone(UTC).strftime(_TIME_FORMAT)}|~"
        for shard in range(SHARDS):
            with storage_errors():
                rows = self._table.query_entities(
                    "PartitionKey eq @pk and RowKey le @upper",
                    parameters={"pk": f"due-{shard:02d}", "upper": upper},
                    select=["RowKey"],
                )
                for row in rows:
                    stamp, _, account_id = str(row["RowKey"]).partition("|")
                    yield DueEntry(account_id, datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=UTC))

    def remove(self, entry: DueEntry) -> None:
        with storage_errors(), contextlib.suppress(ResourceNotFoundError):
            self._table.delete_entity(entry.partition_key, entry.row_key)

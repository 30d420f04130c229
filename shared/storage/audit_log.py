"""The `audit` table: PartitionKey = account id, RowKey = `deleted:<subscription id>:<deleted at, UTC>`.

A record is created once and never overwritten: the first complete picture of a deletion wins, so a purge that is
resumed after a crash (with part of the data already gone) cannot replace it with a partial one.
"""

from __future__ import annotations

from datetime import UTC

from azure.core.exceptions import ResourceExistsError

from shared.domain.audit import DeletionRecord
from shared.storage.layout import AUDIT_TABLE, entity_json
from shared.storage.tables import TableStorage, storage_errors

_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
# As in the accounts table: string properties hold at most 64 KiB, so long JSON spills into Data1, Data2, ...
_DATA_CHUNK = 30_000
DELETION_KIND = "subscription.deleted"


def deletion_row_key(record: DeletionRecord) -> str:
    return f"deleted:{record.subscription_id}:{record.deleted_at.astimezone(UTC).strftime(_TIME_FORMAT)}"


class AuditLog:
    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(AUDIT_TABLE)

    def record_deletion(self, record: DeletionRecord) -> bool:
        """Create the record unless it exists; True if this call wrote it."""
        entity = {
            "PartitionKey": record.account_id,
            "RowKey": deletion_row_key(record),
            "Kind": DELETION_KIND,
            "SubscriptionId": record.subscription_id,
            "DeletedAt": record.deleted_at,
        }
        data = record.model_dump_json()
        for index in range(0, len(data), _DATA_CHUNK):
            entity["Data" if index == 0 else f"Data{index // _DATA_CHUNK}"] = data[index : index + _DATA_CHUNK]
        with storage_errors():
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                return False
        return True

    def deletions(self, account_id: str) -> list[DeletionRecord]:
        """Every deletion recorded for one account, in one query."""
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and Kind eq @kind", parameters={"pk": account_id, "kind": DELETION_KIND}
            )
            return [DeletionRecord.model_validate_json(entity_json(row)) for row in rows]

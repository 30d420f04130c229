"""Table `audit`: what stays after a subscription's data is deleted (keys in layout.py).

A record is created once and never overwritten: the first complete picture of a deletion wins, so a purge that is
resumed after a crash (with part of the data already gone) cannot replace it with a partial one.
"""

from __future__ import annotations

from azure.core.exceptions import ResourceExistsError

from shared.domain.audit import DeletionRecord
from shared.storage.codec import data_properties, decode
from shared.storage.layout import AUDIT_TABLE, DELETION_KIND, deletion_row_key
from shared.storage.tables import TableStorage, storage_errors


class TableAuditLog:
    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(AUDIT_TABLE)

    def record_deletion(self, record: DeletionRecord) -> bool:
        """Create the record unless it exists; True if this call wrote it."""
        entity = {
            "PartitionKey": record.account_id,
            "RowKey": deletion_row_key(record.subscription_id, record.deleted_at),
            "Kind": DELETION_KIND,
            "SubscriptionId": record.subscription_id,
            "DeletedAt": record.deleted_at,
            **data_properties(record),
        }
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
            return [decode(DeletionRecord, row) for row in rows]

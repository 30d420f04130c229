"""Table `audit`: what stays after a subscription's data is deleted, the account snapshots that disagreed with
their account, and every collection hold set, changed or released (keys in layout.py).

A record is created once and never overwritten: the first complete picture of a deletion wins, so a purge that is
resumed after a crash (with part of the data already gone) cannot replace it with a partial one; a redelivered event
finds its disagreement recorded.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceExistsError

from shared.domain.audit import DeletionRecord, HoldRecord, SnapshotDisagreement
from shared.storage.codec import data_properties, decode
from shared.storage.layout import (
    AUDIT_TABLE,
    DELETION_KIND,
    HOLD_KIND,
    SNAPSHOT_DISAGREED_KIND,
    deletion_row_key,
    hold_row_key,
    snapshot_disagreement_row_key,
)
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
        return self._create(entity)

    def record_snapshot_disagreement(self, record: SnapshotDisagreement) -> bool:
        """Create the record unless the event's is there; True if this call wrote it."""
        entity = {
            "PartitionKey": record.account_id,
            "RowKey": snapshot_disagreement_row_key(record.event_id),
            "Kind": SNAPSHOT_DISAGREED_KIND,
            "EventId": record.event_id,
            **data_properties(record),
        }
        return self._create(entity)

    def record_hold(self, record: HoldRecord) -> bool:
        """Create the record unless the same change (account, moment, action) is there; True if this call wrote it."""
        entity = {
            "PartitionKey": record.account_id,
            "RowKey": hold_row_key(record.at, record.action.value),
            "Kind": HOLD_KIND,
            **data_properties(record),
        }
        return self._create(entity)

    def holds(self, account_id: str) -> list[HoldRecord]:
        """Every hold record of one account, oldest first (their RowKeys sort by time), in one query."""
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and Kind eq @kind", parameters={"pk": account_id, "kind": HOLD_KIND}
            )
            return [decode(HoldRecord, row) for row in rows]

    def deletions(self, account_id: str) -> list[DeletionRecord]:
        """Every deletion recorded for one account, in one query."""
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and Kind eq @kind", parameters={"pk": account_id, "kind": DELETION_KIND}
            )
            return [decode(DeletionRecord, row) for row in rows]

    def snapshot_disagreements(self, account_id: str) -> list[SnapshotDisagreement]:
        """Every disagreeing snapshot recorded for one account, in one query."""
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and Kind eq @kind",
                parameters={"pk": account_id, "kind": SNAPSHOT_DISAGREED_KIND},
            )
            return [decode(SnapshotDisagreement, row) for row in rows]

    def _create(self, entity: dict[str, Any]) -> bool:
        with storage_errors():
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                return False
        return True

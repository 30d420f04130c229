"""Table `rejections`: one partition (rejections are rare), RowKey = the rejection id."""

from __future__ import annotations

from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.domain.rejection import Rejection, is_rejection_id
from shared.services.ports import StoredRejection
from shared.storage.codec import data_properties, decode
from shared.storage.layout import REJECTIONS_PARTITION, REJECTIONS_TABLE
from shared.storage.tables import TableStorage, storage_errors


class TableRejectionStore:
    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(REJECTIONS_TABLE)

    def add(self, rejection: Rejection) -> Rejection:
        with storage_errors():
            try:
                self._table.create_entity(_to_entity(rejection))
            except ResourceExistsError:
                existing = self.get(rejection.id)
                return existing.rejection if existing is not None else rejection
        return rejection

    def get(self, identifier: str) -> StoredRejection | None:
        if not is_rejection_id(identifier):
            return None
        with storage_errors():
            try:
                entity = self._table.get_entity(REJECTIONS_PARTITION, identifier)
            except ResourceNotFoundError:
                return None
        return StoredRejection(rejection=decode(Rejection, entity), version=str(entity.metadata["etag"]))

    def all(self) -> list[Rejection]:
        with storage_errors():
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": REJECTIONS_PARTITION})
            return [decode(Rejection, entity) for entity in entities]

    def replace(self, rejection: Rejection, version: str) -> bool:
        with storage_errors():
            try:
                self._table.update_entity(
                    _to_entity(rejection),
                    mode=UpdateMode.REPLACE,
                    etag=version,
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                return False
        return True


def _to_entity(rejection: Rejection) -> dict[str, Any]:
    return {
        "PartitionKey": REJECTIONS_PARTITION,
        "RowKey": rejection.id,
        "Status": rejection.status.value,
        "EventId": rejection.event_id or "",
        **data_properties(rejection),
    }

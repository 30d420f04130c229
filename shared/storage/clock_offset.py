"""Table `testclock`: the test clock's offset from real time, one row read by every instance (TEST_CLOCK_ENABLED)."""

from __future__ import annotations

from datetime import timedelta

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.domain.errors import ConcurrencyError
from shared.storage.layout import TEST_CLOCK_PARTITION, TEST_CLOCK_ROW, TEST_CLOCK_TABLE
from shared.storage.tables import TableStorage, storage_errors

MAX_SHIFT_ATTEMPTS = 10


class TableClockOffsetStore:
    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(TEST_CLOCK_TABLE)

    def offset(self) -> timedelta:
        with storage_errors():
            try:
                entity = self._table.get_entity(TEST_CLOCK_PARTITION, TEST_CLOCK_ROW)
            except ResourceNotFoundError:
                return timedelta(0)
        return timedelta(seconds=float(entity["OffsetSeconds"]))

    def set_offset(self, offset: timedelta) -> None:
        with storage_errors():
            self._table.upsert_entity(_entity(offset), mode=UpdateMode.REPLACE)

    def shift(self, delta: timedelta) -> timedelta:
        for _ in range(MAX_SHIFT_ATTEMPTS):
            with storage_errors():
                try:
                    entity = self._table.get_entity(TEST_CLOCK_PARTITION, TEST_CLOCK_ROW)
                except ResourceNotFoundError:
                    try:
                        self._table.create_entity(_entity(delta))
                    except ResourceExistsError:
                        continue
                    return delta
                shifted = timedelta(seconds=float(entity["OffsetSeconds"])) + delta
                try:
                    self._table.update_entity(
                        _entity(shifted),
                        mode=UpdateMode.REPLACE,
                        etag=entity.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue
                return shifted
        raise ConcurrencyError(f"the test clock kept changing during {MAX_SHIFT_ATTEMPTS} attempts to move it")

    def clear(self) -> None:
        with storage_errors():
            try:
                self._table.delete_entity(TEST_CLOCK_PARTITION, TEST_CLOCK_ROW)
            except ResourceNotFoundError:
                return


def _entity(offset: timedelta) -> dict[str, object]:
    # Seconds as a double: exact to the microsecond for offsets of a few centuries.
    return {"PartitionKey": TEST_CLOCK_PARTITION, "RowKey": TEST_CLOCK_ROW, "OffsetSeconds": offset.total_seconds()}

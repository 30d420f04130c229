"""Messages refused as bad input: kept aside with their reason, listed for operators, re-submitted after a fix.

Table `rejections`, one partition (rejections are rare), RowKey = the rejection id (the queue message id, so a
message delivered again after a crash between recording and deletion is recorded once).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.domain.model import Frozen
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.storage.layout import REJECTIONS_TABLE, entity_json
from shared.storage.tables import TableStorage, storage_errors

REJECTIONS_PARTITION = "rejection"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$")
_DATA_CHUNK = 30_000
_PREVIEW_LENGTH = 200


class RejectionNotFoundError(LookupError):
    pass


class AlreadyResubmittedError(Exception):
    """The rejection was re-submitted before; pass force to send it again."""


class RejectionStatus(StrEnum):
    REJECTED = "rejected"
    RESUBMITTED = "resubmitted"


class Rejection(Frozen):
    """A message that was not processed because of its content, with the exact bytes the host delivered."""

    id: str
    queue: str
    message_id: str | None
    event_id: str | None
    event_type: str | None
    reason: str
    raw_body_base64: str
    received_at: datetime
    dequeue_count: int | None
    status: RejectionStatus = RejectionStatus.REJECTED
    resubmitted_at: datetime | None = None
    resubmit_count: int = 0

    @property
    def raw_body(self) -> bytes:
        return base64.b64decode(self.raw_body_base64)

    @property
    def preview(self) -> str:
        text = self.raw_body.decode("utf-8", errors="replace")
        flat = " ".join(text.split())
        return flat if len(flat) <= _PREVIEW_LENGTH else flat[: _PREVIEW_LENGTH - 1] + "…"

    def resubmitted(self, at: datetime) -> Self:
        return self.model_copy(
            update={
                "status": RejectionStatus.RESUBMITTED,
                "resubmitted_at": at,
                "resubmit_count": self.resubmit_count + 1,
            }
        )


def rejection_id(message_id: str | None, body: bytes) -> str:
    if message_id and _SAFE_KEY.fullmatch(message_id):
        return message_id
    return "body-" + hashlib.sha256(body).hexdigest()[:32]


def record_rejection(
    storage: TableStorage,
    *,
    body: bytes,
    reason: str,
    at: datetime,
    event_id: str | None = None,
    event_type: str | None = None,
    message_id: str | None = None,
    dequeue_count: int | None = None,
    queue: str = PAYMENT_EVENTS_QUEUE,
) -> Rejection:
    """Keep a refused message with its reason; recording the same message again returns the first record."""
    rejection = Rejection(
        id=rejection_id(message_id, body),
        queue=queue,
        message_id=message_id,
        event_id=event_id,
        event_type=event_type,
        reason=reason,
        raw_body_base64=base64.b64encode(body).decode("ascii"),
        received_at=at,
        dequeue_count=dequeue_count,
    )
    table = storage.table(REJECTIONS_TABLE)
    with storage_errors():
        try:
            table.create_entity(_to_entity(rejection))
        except ResourceExistsError:
            existing = get_rejection(storage, rejection.id)
            return existing or rejection
    return rejection


def list_rejections(storage: TableStorage, status: RejectionStatus | None = None) -> list[Rejection]:
    """Every recorded rejection, newest first; optionally only those with `status`."""
    table = storage.table(REJECTIONS_TABLE)
    with storage_errors():
        entities = list(table.query_entities("PartitionKey eq @pk", parameters={"pk": REJECTIONS_PARTITION}))
    rejections = [_from_entity(entity) for entity in entities]
    if status is not None:
        rejections = [rejection for rejection in rejections if rejection.status is status]
    return sorted(rejections, key=lambda rejection: (rejection.received_at, rejection.id), reverse=True)


def get_rejection(storage: TableStorage, identifier: str) -> Rejection | None:
    if not _SAFE_KEY.fullmatch(identifier):
        return None
    table = storage.table(REJECTIONS_TABLE)
    with storage_errors():
        try:
            entity = table.get_entity(REJECTIONS_PARTITION, identifier)
        except ResourceNotFoundError:
            return None
    return _from_entity(entity)


def resubmit_rejection(
    storage: TableStorage,
    identifier: str,
    send: Callable[[bytes], object],
    at: datetime,
    *,
    force: bool = False,
) -> Rejection:
    """Put the original bytes back on the queue through `send`, then mark the rejection re-submitted.

    Sending first means a crash in between leaves the rejection open and a second re-submit sends it again, which
    is harmless: payment events are idempotent by event id.
    """
    table = storage.table(REJECTIONS_TABLE)
    if not _SAFE_KEY.fullmatch(identifier):
        raise RejectionNotFoundError(f"no rejection {identifier!r}")
    with storage_errors():
        try:
            entity = table.get_entity(REJECTIONS_PARTITION, identifier)
        except ResourceNotFoundError:
            raise RejectionNotFoundError(f"no rejection {identifier!r}") from None
    rejection = _from_entity(entity)
    if rejection.status is RejectionStatus.RESUBMITTED and not force:
        raise AlreadyResubmittedError(f"rejection {identifier} was re-submitted at {rejection.resubmitted_at}")
    send(rejection.raw_body)
    updated = rejection.resubmitted(at)
    with storage_errors():
        try:
            table.update_entity(
                _to_entity(updated),
                mode=UpdateMode.REPLACE,
                etag=entity.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            # Another operator re-submitted it at the same moment; their record stands.
            return get_rejection(storage, identifier) or updated
    return updated


def _to_entity(rejection: Rejection) -> dict[str, Any]:
    data = rejection.model_dump_json()
    entity: dict[str, Any] = {
        "PartitionKey": REJECTIONS_PARTITION,
        "RowKey": rejection.id,
        "Status": rejection.status.value,
        "EventId": rejection.event_id or "",
    }
    for index in range(0, max(len(data), 1), _DATA_CHUNK):
        entity["Data" if index == 0 else f"Data{index // _DATA_CHUNK}"] = data[index : index + _DATA_CHUNK]
    return entity


def _from_entity(entity: dict[str, Any]) -> Rejection:
    return Rejection.model_validate_json(entity_json(entity))

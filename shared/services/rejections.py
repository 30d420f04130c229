"""Messages refused as bad input: kept aside with their reason, listed for operators, re-submitted after a fix."""

from __future__ import annotations

import base64
from datetime import datetime

from shared.domain.rejection import Rejection, RejectionStatus, rejection_id
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.services.ports import MessageSender, RejectionStore


class RejectionNotFoundError(LookupError):
    pass


class AlreadyResubmittedError(Exception):
    """The rejection was re-submitted before; pass force to send it again."""


def record_rejection(
    store: RejectionStore,
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
    return store.add(
        Rejection(
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
    )


def list_rejections(store: RejectionStore, status: RejectionStatus | None = None) -> list[Rejection]:
    """Every recorded rejection, newest first; optionally only those with `status`."""
    rejections = [r for r in store.all() if status is None or r.status is status]
    return sorted(rejections, key=lambda rejection: (rejection.received_at, rejection.id), reverse=True)


def get_rejection(store: RejectionStore, identifier: str) -> Rejection | None:
    stored = store.get(identifier)
    return stored.rejection if stored is not None else None


def resubmit_rejection(
    store: RejectionStore, identifier: str, send: MessageSender, at: datetime, *, force: bool = False
) -> Rejection:
    """Put the original bytes back on the queue through `send`, then mark the rejection re-submitted.

    Sending first means a crash in between leaves the rejection open and a second re-submit sends it again, which
    is harmless: payment events are idempotent by event id.
    """
    stored = store.get(identifier)
    if stored is None:
        raise RejectionNotFoundError(f"no rejection {identifier!r}")
    rejection = stored.rejection
    if rejection.status is RejectionStatus.RESUBMITTED and not force:
        raise AlreadyResubmittedError(f"rejection {identifier} was re-submitted at {rejection.resubmitted_at}")
    send(rejection.raw_body)
    updated = rejection.resubmitted(at)
    if not store.replace(updated, stored.version):
        # Another operator re-submitted it at the same moment; their record stands.
        return get_rejection(store, identifier) or updated
    return updated

"""Lifecycle events out to a storage queue, as CloudEvents JSON batches that each fit one queue message.

A message body is a JSON array of complete CloudEvents (`application/cloudevents-batch+json`), base64-encoded as
the Functions host and its consumers expect. Events are packed in order, as many per message as fit the queue's
64 KiB after base64; an event that no message can hold is reported, never sent, so it cannot hold up the others.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.queue import LinearRetry, QueueClient, TextBase64EncodePolicy

from shared.domain.outbox import LifecycleEvent
from shared.services.ports import PublishReport
from shared.storage.tables import RequestBounds

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

EVENT_SOURCE = "/pastdue"
BATCH_MEDIA_TYPE = "application/cloudevents-batch+json"
# A Storage queue message holds at most 64 KiB as stored, that is after base64 (Azure and Azurite alike).
MAX_MESSAGE_BYTES = 64 * 1024
_TOO_LARGE = 413


@dataclass(frozen=True)
class Batch:
    """The events of one queue message and its body: their CloudEvents as one JSON array."""

    events: tuple[LifecycleEvent, ...]
    body: str


@dataclass(frozen=True)
class Packing:
    batches: list[Batch]
    oversized: tuple[LifecycleEvent, ...]  # events no message can hold, even alone


def pack_batches(events: Sequence[LifecycleEvent], *, limit: int = MAX_MESSAGE_BYTES) -> Packing:
    """Pack `events`, in order, into as few JSON-array bodies as fit `limit` bytes once base64-encoded."""
    batches: list[Batch] = []
    oversized: list[LifecycleEvent] = []
    current: list[tuple[LifecycleEvent, str]] = []
    size = 2  # the brackets
    for event in events:
        encoded = json.dumps(event.to_cloudevent(EVENT_SOURCE), separators=(",", ":"))
        if _stored_size(2 + len(encoded)) > limit:
            oversized.append(event)
            continue
        grown = size + len(encoded) + (1 if current else 0)
        if current and _stored_size(grown) > limit:
            batches.append(_batch(current))
            current, grown = [], 2 + len(encoded)
        current.append((event, encoded))
        size = grown
    if current:
        batches.append(_batch(current))
    return Packing(batches=batches, oversized=tuple(oversized))


def _batch(members: list[tuple[LifecycleEvent, str]]) -> Batch:
    return Batch(events=tuple(event for event, _ in members), body="[" + ",".join(text for _, text in members) + "]")


def _stored_size(body_bytes: int) -> int:
    """The size of a body of `body_bytes` ASCII bytes on the queue: base64, 4 characters per 3 bytes, padded."""
    return 4 * -(-body_bytes // 3)


def queue_client_options(bounds: RequestBounds) -> dict[str, Any]:
    """Queue client options that keep each call within `bounds` (the queue SDK has its own retry policy)."""
    # The queue SDK counts its linear backoff in whole seconds.
    backoff = math.ceil(bounds.backoff_seconds)
    return {
        "retry_policy": LinearRetry(backoff=backoff, retry_total=bounds.retries, random_jitter_range=0),
        "connection_timeout": bounds.connection_timeout_seconds,
        "read_timeout": bounds.read_timeout_seconds,
    }


class QueueLifecyclePublisher:
    def __init__(
        self, connection_string: str, queue_name: str, *, bounds: RequestBounds | None = None, **client_options: Any
    ) -> None:
        options = {**(queue_client_options(bounds) if bounds else {}), **client_options}
        self._queue = QueueClient.from_connection_string(
            connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy(), **options
        )
        self._created = False

    @classmethod
    def with_credential(
        cls,
        account_url: str,
        queue_name: str,
        credential: TokenCredential,
        *,
        bounds: RequestBounds | None = None,
        **client_options: Any,
    ) -> Self:
        """The publisher for an identity-based connection: the queue endpoint and an Entra credential."""
        publisher = cls.__new__(cls)
        publisher._queue = QueueClient(
            account_url,
            queue_name,
            credential=credential,
            message_encode_policy=TextBase64EncodePolicy(),
            **{**(queue_client_options(bounds) if bounds else {}), **client_options},
        )
        publisher._created = False
        return publisher

    def publish_batch(self, events: Sequence[LifecycleEvent]) -> PublishReport:
        """Send `events` as batches, in order; stops at the first failed send, and reports what went out."""
        packing = pack_batches(events)
        published: list[str] = []
        failed = [event.id for event in packing.oversized]
        errors = [f"{len(failed)} event(s) larger than a queue message"] if failed else []
        for index, batch in enumerate(packing.batches):
            try:
                self._ensure_queue()
                self._queue.send_message(batch.body)
            except AzureError as error:
                too_large = isinstance(error, HttpResponseError) and error.status_code == _TOO_LARGE
                given_up = packing.batches[index : index + 1] if too_large else packing.batches[index:]
                failed += [event.id for unsent in given_up for event in unsent.events]
                errors.append(f"send failed: {type(error).__name__} {getattr(error, 'status_code', None) or ''}")
                if too_large:
                    continue  # only this message is refused; the next ones may go
                break
            published += [event.id for event in batch.events]
        return PublishReport(published=tuple(published), failed=tuple(failed), error="; ".join(errors) or None)

    def _ensure_queue(self) -> None:
        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                self._queue.create_queue()
            self._created = True

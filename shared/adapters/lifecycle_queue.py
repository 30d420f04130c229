"""Lifecycle events out to a storage queue, base64-encoded as the Functions host and its consumers expect."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, Self

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.domain.outbox import LifecycleEvent
from shared.storage.tables import storage_errors

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

EVENT_SOURCE = "/pastdue"


class QueueLifecyclePublisher:
    def __init__(self, connection_string: str, queue_name: str, **client_options: Any) -> None:
        self._queue = QueueClient.from_connection_string(
            connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy(), **client_options
        )
        self._created = False

    @classmethod
    def with_credential(
        cls, account_url: str, queue_name: str, credential: TokenCredential, **client_options: Any
    ) -> Self:
        """The publisher for an identity-based connection: the queue endpoint and an Entra credential."""
        publisher = cls.__new__(cls)
        publisher._queue = QueueClient(
            account_url,
            queue_name,
            credential=credential,
            message_encode_policy=TextBase64EncodePolicy(),
            **client_options,
        )
        publisher._created = False
        return publisher

    def publish(self, event: LifecycleEvent) -> None:
        with storage_errors():
            if not self._created:
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._created = True
            self._queue.send_message(json.dumps(event.to_cloudevent(EVENT_SOURCE)))

"""The retention work queue (`retention-work`) as a storage queue, base64-encoded as host.json tells the host."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Self

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64EncodePolicy, QueueClient

from shared.adapters.lifecycle_queue import queue_client_options
from shared.storage.tables import RequestBounds, storage_errors

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


class StorageWorkQueue:
    def __init__(self, queue: QueueClient) -> None:
        self._queue = queue
        self._created = False

    @classmethod
    def from_connection_string(
        cls, connection_string: str, queue_name: str, *, bounds: RequestBounds | None = None, **options: Any
    ) -> Self:
        return cls(
            QueueClient.from_connection_string(
                connection_string,
                queue_name,
                message_encode_policy=BinaryBase64EncodePolicy(),
                **{**(queue_client_options(bounds) if bounds else {}), **options},
            )
        )

    @classmethod
    def with_credential(
        cls,
        account_url: str,
        queue_name: str,
        credential: TokenCredential,
        *,
        bounds: RequestBounds | None = None,
        **options: Any,
    ) -> Self:
        return cls(
            QueueClient(
                account_url,
                queue_name,
                credential=credential,
                message_encode_policy=BinaryBase64EncodePolicy(),
                **{**(queue_client_options(bounds) if bounds else {}), **options},
            )
        )

    def send(self, body: bytes) -> None:
        with storage_errors():
            if not self._created:
                with contextlib.suppress(ResourceExistsError):
                    self._queue.create_queue()
                self._created = True
            self._queue.send_message(body)

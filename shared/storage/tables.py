"""Table Storage clients: one per process, with a hook that counts every request sent (retries included)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient

from shared.domain.errors import TransientStorageError
from shared.storage.layout import ALL_TABLES

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


class RequestCounter:
    """Counts storage round trips; passed to the SDK as `raw_request_hook`, so it sees every attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, request: Any) -> None:
        with self._lock:
            self.count += 1

    def reset(self) -> int:
        with self._lock:
            count, self.count = self.count, 0
            return count


class TableStorage:
    """The table clients of one storage account: from a connection string, or an endpoint and an Entra credential."""

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        endpoint: str | None = None,
        credential: TokenCredential | None = None,
        request_hook: Callable[[Any], None] | None = None,
        **client_options: Any,
    ) -> None:
        if request_hook is not None:
            client_options["raw_request_hook"] = request_hook
        if endpoint is not None and credential is not None:
            self.service = TableServiceClient(endpoint=endpoint, credential=credential, **client_options)
        elif connection_string is not None:
            self.service = TableServiceClient.from_connection_string(connection_string, **client_options)
        else:
            raise ValueError("TableStorage needs a connection string, or an endpoint and a credential")
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    def table(self, name: str) -> TableClient:
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._clients[name] = self.service.get_table_client(name)
            return client

    def ensure_tables(self, names: tuple[str, ...] = ALL_TABLES) -> None:
        for name in names:
            with suppress(ResourceExistsError):
                self.service.create_table(name)


@contextmanager
def storage_errors() -> Iterator[None]:
    """Turn an unreachable or failing store into TransientStorageError, so the host retries the work."""
    try:
        yield
    except HttpResponseError as error:
        if error.status_code is not None and (error.status_code >= 500 or error.status_code == 408):
            raise TransientStorageError(f"storage answered {error.status_code}") from error
        raise
    except AzureError as error:
        raise TransientStorageError(type(error).__name__) from error

"""Table Storage clients: one per process, with a hook that counts every request sent (retries included)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RequestBounds:
    """How long one storage call may try before the store counts as unavailable: retries and socket timeouts."""

    retries: int
    backoff_seconds: float
    connection_timeout_seconds: float
    read_timeout_seconds: float

    def table_options(self) -> dict[str, Any]:
        return {
            "retry_total": self.retries,
            "retry_backoff_factor": self.backoff_seconds,
            "retry_backoff_max": 4 * self.backoff_seconds,
            "connection_timeout": self.connection_timeout_seconds,
            "read_timeout": self.read_timeout_seconds,
        }


# A caller waits on an HTTP answer: a store that does not answer is a 503 within seconds (three attempts, each
# given 3 s to connect and 5 s to answer, 0.8 s of backoff), not after the SDK's default 10 retries with backoff up
# to 120 s and 300 s socket timeouts. Queue and timer work keep the defaults: nobody waits on them.
INTERACTIVE_BOUNDS = RequestBounds(retries=2, backoff_seconds=0.4, connection_timeout_seconds=3, read_timeout_seconds=5)


class TableStorage:
    """The table clients of one storage account: from a connection string, or an endpoint and an Entra credential."""

    def __init__(
        self,
        connection_string: str | None = None,
        *,
        endpoint: str | None = None,
        credential: TokenCredential | None = None,
        request_hook: Callable[[Any], None] | None = None,
        bounds: RequestBounds | None = None,
        **client_options: Any,
    ) -> None:
        if bounds is not None:
            client_options = {**bounds.table_options(), **client_options}
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
        with storage_errors():
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

"""Exact storage round trips: the foundation's RequestCounter, plus a breakdown of what each request was."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from urllib.parse import unquote, urlsplit

from shared.storage.tables import RequestCounter

_QUEUE_KINDS = {"POST": "queue-send", "GET": "queue-receive", "DELETE": "queue-delete", "PUT": "queue-update"}
_TABLE_WRITES = {"POST": "insert", "PUT": "upsert", "PATCH": "upsert", "MERGE": "upsert", "DELETE": "delete"}


def request_kind(method: str, url: str) -> str:
    """A short name for one storage request: query, point-read, transaction, insert, upsert, delete, queue-*."""
    path = unquote(urlsplit(url).path)
    method = method.upper()
    if "/messages" in path:
        return _QUEUE_KINDS.get(method, f"queue-{method.lower()}")
    if path.endswith("/$batch"):
        return "transaction"
    if method == "GET":
        return "point-read" if "PartitionKey=" in path else "query"
    if method == "PUT" and "(" not in path:
        return "table-create" if path.endswith("/Tables") else "queue-create"
    return _TABLE_WRITES.get(method, method.lower())


class RequestTally(RequestCounter):
    """Counts every request the SDK sends (retries included) and what kind each one was."""

    def __init__(self) -> None:
        super().__init__()
        self._kinds: Counter[str] = Counter()
        self._kinds_lock = threading.Lock()

    def __call__(self, request: Any) -> None:
        super().__call__(request)
        http = request.http_request
        with self._kinds_lock:
            self._kinds[request_kind(http.method, http.url)] += 1

    def take(self) -> tuple[int, dict[str, int]]:
        """The count and breakdown since the last take, then start again from zero."""
        with self._kinds_lock:
            kinds, self._kinds = dict(self._kinds), Counter()
        return self.reset(), dict(sorted(kinds.items()))

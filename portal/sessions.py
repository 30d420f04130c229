"""Cookie sessions kept in memory: the portal is a local tool, and a restart simply signs everyone out."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

COOKIE_NAME = "portal_session"
MAX_SESSIONS = 1000
MAX_RESULTS_PER_SESSION = 20


@dataclass
class Session:
    id: str
    csrf_token: str
    principal_id: str | None = None
    locales: dict[str, str] = field(default_factory=dict)
    results: OrderedDict[str, dict[str, Any]] = field(default_factory=OrderedDict)
    # A double click sends two requests of one session at once.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def keep_result(self, key: str, result: dict[str, Any]) -> None:
        with self._lock:
            self.results[key] = result
            self.results.move_to_end(key)
            while len(self.results) > MAX_RESULTS_PER_SESSION:
                self.results.popitem(last=False)

    def result(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self.results.get(key)


class SessionStore:
    """Sessions by unguessable id; the oldest are forgotten beyond MAX_SESSIONS."""

    def __init__(self) -> None:
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> Session | None:
        with self._lock:
            return self._sessions.get(session_id) if session_id else None

    def create(self) -> Session:
        session = Session(id=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32))
        with self._lock:
            self._sessions[session.id] = session
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

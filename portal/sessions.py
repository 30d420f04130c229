"""Cookie sessions kept in memory: the portal is a local tool, and a restart simply signs everyone out."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

COOKIE_NAME = "portal_session"
# Sessions nobody has signed in to: any request without a cookie makes one, so they are forgotten oldest first.
MAX_SESSIONS = 1000
# Signed-in sessions are kept apart and bounded per principal: signing in again and again as one admin forgets
# that admin's oldest sessions, never another admin's, and no flood of anonymous requests reaches them.
MAX_SESSIONS_PER_PRINCIPAL = 20
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


def _new_session(principal_id: str | None = None) -> Session:
    return Session(id=secrets.token_urlsafe(32), csrf_token=secrets.token_urlsafe(32), principal_id=principal_id)


class SessionStore:
    """Sessions by unguessable id: anonymous ones beyond MAX_SESSIONS and signed-in ones beyond
    MAX_SESSIONS_PER_PRINCIPAL (for that principal) are forgotten, oldest first."""

    def __init__(self) -> None:
        self._anonymous: OrderedDict[str, Session] = OrderedDict()
        self._signed_in: dict[str, OrderedDict[str, Session]] = {}
        self._principal_of: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            principal = self._principal_of.get(session_id)
            if principal is not None:
                return self._signed_in[principal].get(session_id)
            return self._anonymous.get(session_id)

    def create(self) -> Session:
        session = _new_session()
        with self._lock:
            self._anonymous[session.id] = session
            while len(self._anonymous) > MAX_SESSIONS:
                self._anonymous.popitem(last=False)
        return session

    def sign_in(self, previous: Session, principal_id: str) -> Session:
        """A new session (new id, new form token) for `principal_id`; `previous` is forgotten, so an id planted
        in a browser before sign-in never becomes a signed-in one."""
        session = _new_session(principal_id)
        with self._lock:
            self._forget(previous.id)
            owned = self._signed_in.setdefault(principal_id, OrderedDict())
            owned[session.id] = session
            self._principal_of[session.id] = principal_id
            while len(owned) > MAX_SESSIONS_PER_PRINCIPAL:
                oldest, _ = owned.popitem(last=False)
                del self._principal_of[oldest]
        return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._forget(session_id)

    def _forget(self, session_id: str) -> None:
        self._anonymous.pop(session_id, None)
        principal = self._principal_of.pop(session_id, None)
        if principal is not None:
            self._signed_in[principal].pop(session_id, None)

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that only moves when told: time travel for tests, demos and the operator CLI."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def advance(self, delta: timedelta) -> None:
        self._at += delta

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)


class OffsetClock:
    """Real time plus an offset kept elsewhere (the test clock), re-read at most once per `refresh`.

    A change of the offset reaches `now()` within `refresh`; the cache spares a trigger a storage read per call.
    A failed read raises (the trigger is retried) rather than falling back to real time.
    """

    def __init__(
        self,
        read_offset: Callable[[], timedelta],
        *,
        real: Clock,
        refresh: timedelta,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.real = real
        self._read_offset = read_offset
        self._refresh = refresh.total_seconds()
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._read_at: float | None = None

    def now(self) -> datetime:
        return self.real.now() + self.offset()

    def forget(self) -> None:
        """Read the offset again at the next `now()`: this process just moved the clock itself."""
        with self._lock:
            self._read_at = None

    def offset(self) -> timedelta:
        with self._lock:
            moment = self._monotonic()
            if self._read_at is None or moment - self._read_at >= self._refresh:
                self._offset = self._read_offset()
                self._read_at = moment
            return self._offset

"""The test clock's use cases (TEST_CLOCK_ENABLED): read it, set it to a moment, move it forward, or reset it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.domain.clock import Clock
from shared.services.ports import ClockOffsetStore


@dataclass(frozen=True)
class ClockReading:
    """Real time and the test clock's offset from it, read at one moment."""

    real: datetime
    offset: timedelta

    @property
    def now(self) -> datetime:
        return self.real + self.offset


def read_clock(store: ClockOffsetStore, real: Clock) -> ClockReading:
    return ClockReading(real=real.now(), offset=store.offset())


def set_clock(store: ClockOffsetStore, real: Clock, at: datetime) -> ClockReading:
    """Make the test clock read `at` now; it runs on from there at the pace of real time."""
    reading = ClockReading(real=real.now(), offset=timedelta(0))
    offset = at - reading.real
    store.set_offset(offset)
    return ClockReading(real=reading.real, offset=offset)


def advance_clock(store: ClockOffsetStore, real: Clock, by: timedelta) -> ClockReading:
    """Move the test clock forward by `by` (whatever it reads now)."""
    if by <= timedelta(0):
        raise ValueError("the test clock only advances: give a positive duration (or set it to a moment)")
    offset = store.shift(by)
    return ClockReading(real=real.now(), offset=offset)


def reset_clock(store: ClockOffsetStore, real: Clock) -> ClockReading:
    """Back to real time."""
    store.clear()
    return ClockReading(real=real.now(), offset=timedelta(0))

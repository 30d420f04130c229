"""The test clock: real time plus a stored offset, read with a short cache; set, advance and reset on the fakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.clock import FixedClock, OffsetClock
from shared.domain.errors import TransientStorageError
from shared.settings import Settings
from tests.fakes import MemoryClockOffsetStore, build_in_memory

REAL = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
REFRESH = timedelta(seconds=2)


class Ticks:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


class CountingOffsets(MemoryClockOffsetStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.failing = False

    def offset(self) -> timedelta:
        self.reads += 1
        if self.failing:
            raise TransientStorageError("storage answered 503")
        return super().offset()


def offset_clock(offsets: CountingOffsets, ticks: Ticks, real: FixedClock | None = None) -> OffsetClock:
    return OffsetClock(offsets.offset, real=real or FixedClock(REAL), refresh=REFRESH, monotonic=ticks)


def test_the_offset_is_read_once_per_refresh_interval_however_often_now_is_asked() -> None:
    offsets, ticks = CountingOffsets(), Ticks()
    offsets.set_offset(timedelta(days=31))
    clock = offset_clock(offsets, ticks)

    readings = [clock.now() for _ in range(50)]
    ticks.value += 1.9
    readings += [clock.now() for _ in range(50)]

    assert offsets.reads == 1
    assert set(readings) == {REAL + timedelta(days=31)}


def test_a_change_of_the_offset_is_seen_once_the_refresh_interval_has_passed() -> None:
    offsets, ticks = CountingOffsets(), Ticks()
    clock = offset_clock(offsets, ticks)
    assert clock.now() == REAL

    offsets.shift(timedelta(hours=5))
    stale = clock.now()
    ticks.value += REFRESH.total_seconds()

    assert stale == REAL
    assert clock.now() == REAL + timedelta(hours=5)
    assert offsets.reads == 2


def test_real_time_keeps_running_under_the_offset() -> None:
    offsets, ticks, real = CountingOffsets(), Ticks(), FixedClock(REAL)
    offsets.set_offset(timedelta(days=2))
    clock = offset_clock(offsets, ticks, real)
    clock.now()

    real.advance(timedelta(minutes=3))

    assert clock.now() == REAL + timedelta(days=2, minutes=3)


def test_a_failed_read_raises_instead_of_falling_back_to_real_time_and_the_next_call_reads_again() -> None:
    offsets, ticks = CountingOffsets(), Ticks()
    offsets.set_offset(timedelta(days=31))
    offsets.failing = True
    clock = offset_clock(offsets, ticks)

    with pytest.raises(TransientStorageError):
        clock.now()
    offsets.failing = False

    assert clock.now() == REAL + timedelta(days=31)
    assert offsets.reads == 2


def test_with_the_setting_on_the_use_cases_read_the_test_clock_and_the_wall_clock_stays_real() -> None:
    deps = build_in_memory(Settings(test_clock_enabled=True), clock=FixedClock(REAL))

    deps.advance_test_clock(timedelta(days=31))

    assert deps.clock.now() == REAL + timedelta(days=31)
    assert deps.wall_clock.now() == REAL


def test_without_the_setting_the_stored_offset_is_ignored() -> None:
    deps = build_in_memory(Settings(), clock=FixedClock(REAL))

    deps.advance_test_clock(timedelta(days=31))

    assert deps.clock.now() == REAL
    assert deps.read_test_clock().now == REAL + timedelta(days=31)


def test_set_makes_the_test_clock_read_that_moment_and_advance_and_reset_move_it() -> None:
    deps = build_in_memory(Settings(test_clock_enabled=True), clock=FixedClock(REAL))
    moment = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)

    assert deps.set_test_clock(moment).now == moment
    assert deps.read_test_clock().now == moment
    assert deps.advance_test_clock(timedelta(days=31)).now == moment + timedelta(days=31)
    assert deps.reset_test_clock().offset == timedelta(0)
    assert deps.read_test_clock().now == REAL


@pytest.mark.parametrize("by", [timedelta(0), -timedelta(days=1)])
def test_the_test_clock_only_advances(by: timedelta) -> None:
    deps = build_in_memory(Settings(test_clock_enabled=True), clock=FixedClock(REAL))

    with pytest.raises(ValueError, match="only advances"):
        deps.advance_test_clock(by)
    assert deps.read_test_clock().offset == timedelta(0)


def test_a_move_made_by_this_process_is_seen_by_its_own_use_cases_at_once() -> None:
    deps = build_in_memory(Settings(test_clock_enabled=True), clock=FixedClock(REAL))
    assert deps.clock.now() == REAL  # the offset is now cached for the refresh interval

    deps.advance_test_clock(timedelta(days=1))
    after_advance = deps.clock.now()
    deps.set_test_clock(REAL + timedelta(days=40))
    after_set = deps.clock.now()
    deps.reset_test_clock()

    assert (after_advance, after_set, deps.clock.now()) == (REAL + timedelta(days=1), REAL + timedelta(days=40), REAL)


def test_forget_makes_the_next_reading_fresh_within_the_refresh_interval() -> None:
    offsets, ticks = CountingOffsets(), Ticks()
    clock = offset_clock(offsets, ticks)
    assert clock.now() == REAL

    offsets.shift(timedelta(hours=5))
    clock.forget()

    assert clock.now() == REAL + timedelta(hours=5)
    assert offsets.reads == 2

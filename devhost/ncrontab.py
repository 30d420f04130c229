"""Timer schedules: six-field NCRONTAB (seconds first) and TimeSpan intervals, evaluated in UTC."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

from devhost.settings import resolve_references
from devhost.timespan import is_timespan, parse_timespan

_MONTH_NAMES = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAY_NAMES = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# A day-and-month pair that exists (29 Feb) recurs on a given weekday at least once in 28 years.
_SEARCH_DAYS = 366 * 29


class CronSyntaxError(ValueError):
    pass


class Schedule(Protocol):
    def next_after(self, moment: datetime) -> datetime: ...


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0

    def parse(self, text: str, expression: str) -> frozenset[int]:
        values: set[int] = set()
        for part in text.split(","):
            values.update(self._parse_part(part, expression))
        return frozenset(values)

    def _parse_part(self, part: str, expression: str) -> range:
        span, _, step_text = part.partition("/")
        step = self._number(step_text, expression) if step_text else 1
        if step_text and step < 1:
            raise self._error(f"step '{step_text}' must be at least 1", expression)
        if span == "*":
            first, last = self.low, self.high
        elif "-" in span:
            first_text, _, last_text = span.partition("-")
            first, last = self._value(first_text, expression), self._value(last_text, expression)
            if first > last:
                raise self._error(f"range '{span}' runs backwards", expression)
        else:
            first = self._value(span, expression)
            # NCrontab reads "a/n" as "from a to the end, every n".
            last = self.high if step_text else first
        return range(first, last + 1, step)

    def _value(self, text: str, expression: str) -> int:
        upper = text.strip().upper()
        if upper in self.names:
            return self.names.index(upper) + self.name_base
        value = self._number(text, expression)
        if not self.low <= value <= self.high:
            raise self._error(f"'{text}' is outside {self.low}-{self.high}", expression)
        return value

    def _number(self, text: str, expression: str) -> int:
        if not text.strip().isdigit():
            raise self._error(f"'{text}' is not a number", expression)
        return int(text)

    def _error(self, problem: str, expression: str) -> CronSyntaxError:
        return CronSyntaxError(f"invalid NCRONTAB expression '{expression}': {self.name} {problem}")


_FIELDS = (
    _Field("second", 0, 59),
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day", 1, 31),
    _Field("month", 1, 12, _MONTH_NAMES, name_base=1),
    _Field("day-of-week", 0, 6, _DAY_NAMES),
)


@dataclass(frozen=True)
class CronSchedule:
    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment` (naive datetimes are taken as UTC)."""
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        start = moment.replace(microsecond=0) + timedelta(seconds=1)
        day = start.date()
        floor = (start.hour, start.minute, start.second)
        for _ in range(_SEARCH_DAYS):
            if self._matches_day(day):
                found = self._first_time_from(floor)
                if found is not None:
                    return datetime(day.year, day.month, day.day, *found, tzinfo=UTC)
            day += timedelta(days=1)
            floor = (0, 0, 0)
        raise CronSyntaxError(f"NCRONTAB expression '{self.expression}' never occurs")

    def _matches_day(self, day: date) -> bool:
        # Unlike Vixie cron, NCrontab requires both day-of-month and day-of-week to match.
        weekday = (day.weekday() + 1) % 7
        return day.month in self.months and day.day in self.days and weekday in self.days_of_week

    def _first_time_from(self, floor: tuple[int, int, int]) -> tuple[int, int, int] | None:
        for hour in self.hours:
            if hour < floor[0]:
                continue
            for minute in self.minutes:
                if (hour, minute) < floor[:2]:
                    continue
                for second in self.seconds:
                    if (hour, minute, second) >= floor:
                        return hour, minute, second
        return None


@dataclass(frozen=True)
class IntervalSchedule:
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime:
        return moment + self.interval


def parse_ncrontab(expression: str) -> CronSchedule:
    """Parse `{second} {minute} {hour} {day} {month} {day-of-week}`."""
    parts = expression.split()
    if len(parts) != len(_FIELDS):
        raise CronSyntaxError(
            f"invalid NCRONTAB expression '{expression}': expected 6 fields "
            "'{second} {minute} {hour} {day} {month} {day-of-week}', "
            f"got {len(parts)}"
        )
    second, minute, hour, day, month, weekday = (
        field.parse(text, expression) for field, text in zip(_FIELDS, parts, strict=True)
    )
    return CronSchedule(
        expression, tuple(sorted(second)), tuple(sorted(minute)), tuple(sorted(hour)), day, month, weekday
    )


def parse_schedule(schedule: str, environ: Mapping[str, str] | None = None) -> CronSchedule | IntervalSchedule:
    """A timer trigger's schedule: `%SETTING%` resolved, then NCRONTAB or a TimeSpan `hh:mm:ss`."""
    text = resolve_references(schedule, environ).strip()
    if is_timespan(text):
        interval = parse_timespan(text)
        if interval <= timedelta(0):
            raise CronSyntaxError(f"TimeSpan schedule '{text}' must be positive")
        return IntervalSchedule(interval)
    return parse_ncrontab(text)

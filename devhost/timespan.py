"""The .NET TimeSpan text form `[d.]hh:mm:ss[.fffffff]` used by host.json and timer schedules."""

from __future__ import annotations

import re
from datetime import timedelta

_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{1,2}):(?P<s>\d{1,2})(?:\.(?P<frac>\d{1,7}))?$")


def is_timespan(text: str) -> bool:
    return _TIMESPAN.match(text.strip()) is not None


def parse_timespan(text: str) -> timedelta:
    match = _TIMESPAN.match(text.strip())
    if match is None:
        raise ValueError(f"'{text}' is not a TimeSpan of the form [d.]hh:mm:ss[.fffffff]")
    hours, minutes, seconds = int(match["h"]), int(match["m"]), int(match["s"])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"'{text}' is not a TimeSpan: hours 0-23, minutes and seconds 0-59")
    fraction = float(f"0.{match['frac']}") if match["frac"] else 0.0
    return timedelta(days=int(match["days"] or 0), hours=hours, minutes=minutes, seconds=seconds + fraction)


def parse_duration(value: object, setting: str) -> timedelta:
    """A host.json duration: a TimeSpan string or a number of milliseconds."""
    if isinstance(value, bool):
        raise ValueError(f"{setting}: expected a TimeSpan 'hh:mm:ss' or milliseconds, got {value!r}")
    if isinstance(value, int | float):
        return timedelta(milliseconds=value)
    if isinstance(value, str):
        if value.strip().isdigit():
            return timedelta(milliseconds=int(value))
        try:
            return parse_timespan(value)
        except ValueError as error:
            raise ValueError(f"{setting}: {error}") from error
    raise ValueError(f"{setting}: expected a TimeSpan 'hh:mm:ss' or milliseconds, got {value!r}")

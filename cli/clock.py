"""`python -m cli clock show|set|advance|reset`: the test clock, a sandbox feature (TEST_CLOCK_ENABLED).

The test clock is an offset from real time kept in storage (table `testclock`), so it runs on between commands and
every instance reads the same one. `set 2031-03-01T09:00:00Z` makes it read that moment now; `advance 31d` (or
`12h`, `90m`) moves it forward; `reset` goes back to real time. Instances started with TEST_CLOCK_ENABLED=true
(the host that scripts/run-local.sh starts) follow a change within a few seconds; others ignore it.
"""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.bootstrap import TEST_CLOCK_REFRESH, Dependencies, build
from shared.services.clock_travel import ClockReading
from shared.settings import Settings

_DURATION = re.compile(r"(?P<count>[1-9][0-9]{0,5})(?P<unit>[dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "clock",
        help="show or move the test clock (sandbox: TEST_CLOCK_ENABLED)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="clock_command", required=True)
    actions.add_parser("show", help="what the test clock reads, and real time").set_defaults(handler=show)
    moment = actions.add_parser("set", help="make the test clock read this moment now")
    moment.add_argument("moment", type=parse_utc_moment, metavar="ISO-8601", help="such as 2031-03-01T09:00:00Z")
    moment.set_defaults(handler=set_moment)
    advance = actions.add_parser("advance", help="move the test clock forward")
    advance.add_argument("duration", type=parse_duration, metavar="<N>d|<N>h|<N>m", help="such as 31d, 12h or 90m")
    advance.set_defaults(handler=advance_by)
    actions.add_parser("reset", help="back to real time").set_defaults(handler=reset)


def parse_utc_moment(text: str) -> datetime:
    """An ISO 8601 date-time (`Z` or an offset; without one, UTC) or a date (its midnight, UTC)."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time such as 2031-03-01T09:00:00Z: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"a whole number of days, hours or minutes (31d, 12h, 90m), not {text!r}")
    return timedelta(**{_UNITS[match["unit"]]: int(match["count"])})


def show(_args: argparse.Namespace) -> int:
    print(format_reading(_deps().read_test_clock()))
    return 0


def set_moment(args: argparse.Namespace) -> int:
    print(format_reading(_deps().set_test_clock(args.moment)))
    return 0


def advance_by(args: argparse.Namespace) -> int:
    print(format_reading(_deps().advance_test_clock(args.duration)))
    return 0


def reset(_args: argparse.Namespace) -> int:
    print(format_reading(_deps().reset_test_clock()))
    return 0


def format_reading(reading: ClockReading) -> str:
    follows = (
        f"instances with TEST_CLOCK_ENABLED=true follow it within {int(TEST_CLOCK_REFRESH.total_seconds())} s; "
        "others run on real time"
    )
    if not reading.offset:
        return f"test clock  {_stamp(reading.now)}  (real time, no offset)\n{follows}"
    return (
        f"test clock  {_stamp(reading.now)}  (real time {format_offset(reading.offset)})\n"
        f"real time   {_stamp(reading.real)}\n{follows}"
    )


def format_offset(offset: timedelta) -> str:
    sign = "-" if offset < timedelta(0) else "+"
    seconds = round(abs(offset).total_seconds())
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign} {days}d {hours}h {minutes}m {seconds}s"


def _deps() -> Dependencies:
    return build(Settings.load())


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

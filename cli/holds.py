"""`hold ACCOUNT_ID --reason TEXT [--until MOMENT]` and `release ACCOUNT_ID`: support pauses an account's collection.

While held, the account gets no reminder, warning, cancellation or deletion; payments still settle. Releasing (or
reaching `--until`) moves every pending deadline later by the time held. The operator is recorded as `cli:<user>`.
"""

from __future__ import annotations

import argparse
import getpass
import re
from datetime import UTC, datetime

from cli.retention import parse_moment
from shared.bootstrap import dependencies
from shared.domain.holds import HoldChange, HoldOutcome, InvalidHoldError
from shared.domain.model import MAX_HOLD_REASON_LENGTH
from shared.domain.settle_balance import AccountNotFoundError

_NOT_IN_IDENTIFIER = re.compile(r"[^A-Za-z0-9._:@+-]")


def operator() -> str:
    """`cli:<login name>`, kept to the characters an identifier may hold."""
    user = _NOT_IN_IDENTIFIER.sub("-", getpass.getuser()) or "unknown"
    return f"cli:{user}"[:128]


def _reason(text: str) -> str:
    reason = text.strip()
    if not reason or len(reason) > MAX_HOLD_REASON_LENGTH:
        raise argparse.ArgumentTypeError(f"give a reason of 1-{MAX_HOLD_REASON_LENGTH} characters")
    return reason


def _hold_command(args: argparse.Namespace) -> int:
    try:
        change = dependencies().hold_account(args.account_id, reason=args.reason, set_by=operator(), until=args.until)
    except InvalidHoldError as error:
        print(f"error: --{error.field}: {error}")
        return 2
    except AccountNotFoundError:
        print(f"no account {args.account_id}")
        return 1
    print(describe(args.account_id, change))
    return 0


def _release_command(args: argparse.Namespace) -> int:
    try:
        change = dependencies().release_account(args.account_id, released_by=operator())
    except AccountNotFoundError:
        print(f"no account {args.account_id}")
        return 1
    print(describe(args.account_id, change))
    return 0


def describe(account_id: str, change: HoldChange) -> str:
    if change.outcome is HoldOutcome.NOT_HELD:
        return f"account {account_id} is not held: nothing released"
    if change.outcome is HoldOutcome.RELEASED:
        moved = ", ".join(f"{sid} +{held}" for sid, held in sorted((change.shifted or {}).items())) or "none"
        return f"account {account_id} released; deadlines moved later: {moved}"
    hold = change.hold
    assert hold is not None
    until = f"until {_stamp(hold.until)}" if hold.until else "until released"
    verb = {HoldOutcome.SET: "held", HoldOutcome.CHANGED: "hold changed", HoldOutcome.UNCHANGED: "already held so"}
    return f"account {account_id} {verb[change.outcome]}: since {_stamp(hold.since)}, {until}, set by {hold.set_by}"


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hold = subparsers.add_parser("hold", help="pause an account's collection (no reminders, cancellation, deletion)")
    hold.add_argument("account_id")
    hold.add_argument("--reason", required=True, type=_reason, help="why (kept and shown, never logged)")
    hold.add_argument(
        "--until",
        type=parse_moment,
        default=None,
        metavar="MOMENT",
        help="ISO 8601 UTC date-time (or YYYY-MM-DD: the end of that day) when the hold ends by itself",
    )
    hold.set_defaults(handler=_hold_command)
    release = subparsers.add_parser("release", help="end an account's hold; its deadlines move by the time held")
    release.add_argument("account_id")
    release.set_defaults(handler=_release_command)

"""`python -m cli retention [--dry-run] [--at DATE]`: what the retention timer does (or would do) at a moment.

With `--at` the run happens at that moment with a fixed clock: time travel for demos and tests. Without it, the run
happens now: on the test clock where TEST_CLOCK_ENABLED=true, else on real time. `--dry-run` reads
the due index and the due accounts and lists what would happen, writing nothing.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from shared.bootstrap import build
from shared.domain.clock import FixedClock
from shared.domain.retention_plan import RetentionAction, RetentionActionKind
from shared.services.retention import RetentionReport
from shared.settings import Settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "retention",
        help="run the retention timer now or at another moment (time travel), or list what it would do",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--at",
        type=parse_moment,
        default=None,
        metavar="DATE",
        help="YYYY-MM-DD (the end of that day, UTC) or an ISO 8601 date-time; default: now",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would happen; write and send nothing")
    parser.set_defaults(handler=run)


def parse_moment(text: str) -> datetime:
    """A date means the end of that day (UTC), so everything due on it is included; a naive time is UTC."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(23, 59, 59), tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD) or ISO date-time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if args.at:
        # A moment given is the moment of the run, whatever the test clock reads.
        deps = build(settings.model_copy(update={"test_clock_enabled": False}), clock=FixedClock(args.at))
    else:
        deps = build(settings)
    report = deps.run_retention(
        now=deps.clock.now(),
        time_budget=timedelta(seconds=settings.retention_time_budget_seconds),
        dry_run=args.dry_run,
    )
    print(format_report(report))
    return 1 if report.accounts_failed else 0


def format_report(report: RetentionReport) -> str:
    """The operator's listing: one line per action (ids and dates only), then the counts."""
    mode = "dry run, nothing written" if report.dry_run else "carried out"
    lines = [f"Retention at {_stamp(report.at)} ({mode})"]
    lines += [f"  {a.account_id} / {a.subscription_id}: {describe(a)}" for a in report.actions]
    if not report.actions:
        lines.append("  nothing to do")
    counts = ", ".join(f"{kind.value} {count}" for kind, count in sorted(report.counts.items()))
    lines.append(
        f"{report.entries_due} due entries, {report.accounts_reviewed} accounts reviewed, "
        f"{report.accounts_failed} failed{'; ' + counts if counts else ''}"
    )
    if not report.dry_run:
        lines.append(f"{report.emails_sent} emails sent, {report.events_published} lifecycle events published")
    if report.budget_exhausted:
        lines.append("time budget spent: the rest stays due for the next run")
    return "\n".join(lines)


def describe(action: RetentionAction) -> str:
    when = action.effective_date.isoformat() if action.effective_date else "?"
    descriptions = {
        RetentionActionKind.REMINDER: f"reminder (day {action.offset_days}), cancellation on {when}",
        RetentionActionKind.FINAL_NOTICE: f"Warned + final notice, disabled on {when}",
        RetentionActionKind.DISABLED: f"Disabled (subscription.disabled), data deleted on {when}",
        RetentionActionKind.DELETION_WARNING: f"deletion warning ({action.offset_days} d before), deletion on {when}",
        RetentionActionKind.DELETED: "Deleted (tombstone, subscription.deleted)",
        RetentionActionKind.PURGED: "data purged, audit record written",
        RetentionActionKind.REENABLED: "re-enabled: all charges paid (subscription.enabled)",
        RetentionActionKind.SUPERSEDED: f"{action.milestone} ({action.offset_days} d) skipped: a later step covers it",
        RetentionActionKind.NOTICE_WITHDRAWN: "unsent notice withdrawn: the balance was settled",
    }
    return descriptions[action.kind]


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")

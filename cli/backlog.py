"""`python -m cli backlog [--json]`: what the retention pass has still to do, how long it has waited, how late the
latest reviews acted on their milestones, and how much work is queued.

Reads every due entry (one query per shard, paged) and the two work queues' approximate lengths: an operator's
question, not something to poll every second.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.bootstrap import dependencies
from shared.domain.errors import TransientStorageError
from shared.domain.retention_work import RETENTION_WORK_QUEUE
from shared.services.backlog import Backlog


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "backlog",
        help="the retention backlog: oldest due entry, counts by age, lag of the latest reviews, queued work",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="the figures as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    deps = dependencies()
    try:
        backlog = deps.retention_backlog(deps.clock.now())
        queued = _queue_lengths(deps.settings.storage_connection_string.get_secret_value())
    except (AzureError, TransientStorageError) as error:
        print(f"error: storage did not answer ({type(error).__name__})")
        return 2
    if args.json:
        print(json.dumps(as_json(backlog, queued), indent=2))
    else:
        print(format_backlog(backlog, queued))
    return 0


def _queue_lengths(connection_string: str) -> dict[str, int | None]:
    lengths: dict[str, int | None] = {}
    for name in (RETENTION_WORK_QUEUE, f"{RETENTION_WORK_QUEUE}-poison"):
        try:
            properties = QueueClient.from_connection_string(connection_string, name).get_queue_properties()
            lengths[name] = properties.approximate_message_count
        except ResourceNotFoundError:
            lengths[name] = 0
    return lengths


def as_json(backlog: Backlog, queued: dict[str, int | None]) -> dict[str, object]:
    age = backlog.oldest_age
    return {
        "at": backlog.at.isoformat(),
        "entriesDue": backlog.entries_due,
        "accountsDue": backlog.accounts_due,
        "setAside": backlog.set_aside,
        "oldestDueAt": backlog.oldest_due_at.isoformat() if backlog.oldest_due_at else None,
        "oldestAgeSeconds": age.total_seconds() if age is not None else None,
        "byAge": backlog.by_age,
        "latestReviews": [
            {
                "shard": progress.shard,
                "reviewedAt": progress.reviewed_at.isoformat(),
                "accounts": progress.accounts,
                "maxLagSeconds": progress.max_lag_seconds,
                "meanLagSeconds": progress.mean_lag_seconds,
            }
            for progress in backlog.shards
        ],
        "queued": queued,
    }


def format_backlog(backlog: Backlog, queued: dict[str, int | None]) -> str:
    lines = [f"retention backlog at {backlog.at:%Y-%m-%d %H:%M:%S} UTC"]
    if backlog.oldest_due_at is None:
        lines.append("  nothing due")
    else:
        lines.append(
            f"  {backlog.entries_due} due entr{'y' if backlog.entries_due == 1 else 'ies'} for "
            f"{backlog.accounts_due} account(s); oldest due {backlog.oldest_due_at:%Y-%m-%d %H:%M:%S} UTC "
            f"({_duration(backlog.oldest_age.total_seconds() if backlog.oldest_age else 0)} ago)"
        )
        lines += [f"    {bucket:<14} {count}" for bucket, count in backlog.by_age.items()]
        if backlog.set_aside:
            lines.append(f"  {backlog.set_aside} set aside after failing every attempt (python -m cli rejections list)")
    if backlog.shards:
        lines.append("  latest review per shard (lag = action time - milestone moment):")
        lines += [
            f"    due-{p.shard:02d}  {p.reviewed_at:%Y-%m-%d %H:%M:%S}  {p.accounts:>3} account(s)  "
            f"max lag {_duration(p.max_lag_seconds)}, mean {_duration(p.mean_lag_seconds)}"
            for p in backlog.shards
        ]
    lines.append("  queued: " + ", ".join(f"{name} {count}" for name, count in queued.items()))
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"

"""The retention backlog, for operators: what is due and waiting, how long it has waited, and how late the latest
reviews acted on their milestones."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.model import Frozen
from shared.services.ports import DueIndex, ShardProgress

# Age buckets of due entries: within one default schedule interval, within the hour, the day, and older.
AGE_BUCKETS: tuple[tuple[str, timedelta], ...] = (
    ("under 15 min", timedelta(minutes=15)),
    ("15 min - 1 h", timedelta(hours=1)),
    ("1 h - 24 h", timedelta(days=1)),
)
OLDER_BUCKET = "over 24 h"


class Backlog(Frozen):
    at: datetime
    entries_due: int
    accounts_due: int
    set_aside: int
    oldest_due_at: datetime | None
    by_age: dict[str, int]
    shards: tuple[ShardProgress, ...] = ()

    @property
    def oldest_age(self) -> timedelta | None:
        return self.at - self.oldest_due_at if self.oldest_due_at else None


def read_backlog(due: DueIndex, now: datetime) -> Backlog:
    """Reads every due entry (one query per shard, paged): an operator's question, not the hot path."""
    by_age = dict.fromkeys([name for name, _ in AGE_BUCKETS] + [OLDER_BUCKET], 0)
    entries = list(due.due(now))
    for entry in entries:
        age = now - entry.due_at
        bucket = next((name for name, limit in AGE_BUCKETS if age < limit), OLDER_BUCKET)
        by_age[bucket] += 1
    return Backlog(
        at=now,
        entries_due=len(entries),
        accounts_due=len({entry.account_id for entry in entries}),
        set_aside=sum(1 for entry in entries if entry.set_aside),
        oldest_due_at=min((entry.due_at for entry in entries), default=None),
        by_age=by_age,
        shards=tuple(sorted(due.progress(), key=lambda progress: progress.shard)),
    )

"""The retention pass spread over the work queue: the timer starts it, sweeps hand out batches, workers review.

See shared/domain/retention_work.py for the three kinds of work item and why there are two levels. Effects stay
exactly once whatever the queue does: a review decides on the account's stored state under its ETag, the entries a
review consumed are removed only after it finished, and whatever a crash interrupts stays due for the next item
or firing. A batch in which one account fails hands that account on as a batch of its own, so the host's retries
and, after the last of them, the set-aside concern that account alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.domain.errors import TransientStorageError
from shared.domain.model import Frozen
from shared.domain.retention_plan import RetentionAction
from shared.domain.retention_work import (
    AccountReview,
    DueWork,
    Housekeeping,
    ShardSweep,
    encode_work,
    pass_items,
    review_batches,
)
from shared.services.ports import DueEntry, ShardProgress, WorkQueue
from shared.services.retention import AccountReviewed, Retention, review_account

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionWork:
    """The ports the queue-driven pass touches."""

    retention: Retention
    queue: WorkQueue
    batch_size: int


class PassStarted(Frozen):
    at: datetime
    shards: int
    items_sent: int


class ShardSwept(Frozen):
    shard: int
    entries_due: int
    set_aside: int
    batches_sent: int


class BatchReviewed(Frozen):
    accounts_reviewed: int
    accounts_failed: int
    accounts_handed_on: int
    entries_removed: int
    actions: tuple[RetentionAction, ...] = ()
    emails_sent: int = 0
    emails_retrying: int = 0
    events_published: int = 0
    max_lag_seconds: float = 0.0


class AccountReviewFailedError(Exception):
    """The one account of a batch failed for a reason the next attempt may not have; the host retries the item."""


def start_pass(work: RetentionWork, now: datetime) -> PassStarted:
    """What the timer does: one sweep per shard and the housekeeping, whatever is due (cost O(shards))."""
    shards = work.retention.due.shards_to_sweep()
    items = pass_items(shards, now)
    for item in items:
        work.queue.send(encode_work(item))
    return PassStarted(at=now, shards=shards, items_sent=len(items))


def sweep_shard(work: RetentionWork, sweep: ShardSweep) -> ShardSwept:
    """Hand a shard's due entries out as review batches; entries set aside after failing every attempt wait."""
    due = list(work.retention.due.due_in_shard(sweep.shard, sweep.at))
    waiting = [entry for entry in due if entry.set_aside is None]
    batches = review_batches(
        (DueWork(account_id=e.account_id, due_at=e.due_at, shard=sweep.shard) for e in waiting),
        sweep.at,
        work.batch_size,
    )
    for batch in batches:
        work.queue.send(encode_work(batch))
    return ShardSwept(
        shard=sweep.shard, entries_due=len(waiting), set_aside=len(due) - len(waiting), batches_sent=len(batches)
    )


def review_batch(work: RetentionWork, review: AccountReview, *, now: datetime) -> BatchReviewed:
    """Review each account of the batch once at `now`, then remove the entries each review consumed."""
    ports = work.retention
    reviewed: list[AccountReviewed] = []
    failed: list[tuple[str, str]] = []
    removed = 0
    lags: list[float] = []
    for account_id in review.account_ids:
        entries = entries_of(review, account_id)
        try:
            outcome = review_account(ports, account_id, now=now)
        except TransientStorageError:
            raise  # the store is in trouble, not this account: the host retries the whole item later
        except Exception as error:
            # No message: it may quote personal data. The entries stay; the account is retried on its own.
            log.error("retention: account %s failed with %s; it stays due", account_id, type(error).__name__)
            failed.append((account_id, type(error).__name__))
            continue
        reviewed.append(outcome)
        for entry in entries:
            if not entry.same_row(outcome.next_entry):
                ports.due.remove(entry)
                removed += 1
        lags += [max((now - entry.due_at).total_seconds(), 0.0) for entry in entries]
    if lags:
        ports.due.record_progress(
            ShardProgress(
                shard=review.entries[0].shard,
                reviewed_at=now,
                accounts=len(reviewed),
                max_lag_seconds=max(lags),
                mean_lag_seconds=sum(lags) / len(lags),
            )
        )
    handed_on = _hand_on_failed(work, review, failed)
    return BatchReviewed(
        accounts_reviewed=len(reviewed),
        accounts_failed=len(failed),
        accounts_handed_on=handed_on,
        entries_removed=removed,
        actions=tuple(action for outcome in reviewed for action in outcome.actions),
        emails_sent=sum(outcome.emails_sent for outcome in reviewed),
        emails_retrying=sum(outcome.emails_retrying for outcome in reviewed),
        events_published=sum(outcome.events_published for outcome in reviewed),
        max_lag_seconds=max(lags, default=0.0),
    )


def _hand_on_failed(work: RetentionWork, review: AccountReview, failed: Sequence[tuple[str, str]]) -> int:
    if not failed:
        return 0
    if len(review.account_ids) == 1:
        account_id, error = failed[0]
        raise AccountReviewFailedError(f"reviewing account {account_id} failed: {error}")
    for account_id, _ in failed:
        work.queue.send(encode_work(AccountReview(at=review.at, entries=tuple(review.entries_of(account_id)))))
    return len(failed)


def entries_of(review: AccountReview, account_id: str | None = None) -> list[DueEntry]:
    """The batch's entries (of one account, if given) as the due index knows them."""
    chosen = review.entries if account_id is None else review.entries_of(account_id)
    return [DueEntry(e.account_id, e.due_at, shard=e.shard) for e in chosen]


def set_aside_review(work: RetentionWork, review: AccountReview, rejection_id: str) -> None:
    """After the last attempt: the entries stay due, marked, so sweeps pass them by until the item is re-submitted."""
    work.retention.due.set_aside(entries_of(review), rejection_id)


def housekeeping(work: RetentionWork, item: Housekeeping) -> int:
    """Forget webhook ids expired at the firing's moment; returns how many."""
    return work.retention.webhooks.purge_expired(item.at)

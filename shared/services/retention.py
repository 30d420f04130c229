"""The retention review: reminders, cancellation and deletion of what the due index says is due.

`review_account` is the unit the queue worker runs (shared/services/retention_work.py); `run_retention` reviews
everything due in one process within a time budget (the CLI's `retention --at`, and its dry run).

Per due account: read the partition once, stage every due step (`plan_account`), schedule the next review, commit
(ETag-guarded; a lost race re-reads and re-decides), deliver the account's outbox, and only then remove the consumed
due entries. A crash anywhere leaves the entry in place, and the next run finishes the job without repeating it.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import Field

from shared.domain.clock import Clock
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.errors import ConcurrencyError, TransientStorageError
from shared.domain.model import Frozen
from shared.domain.partition import AccountPartition
from shared.domain.retention_plan import AccountPlan, RetentionAction, RetentionActionKind, plan_account
from shared.domain.settle_balance import pending_card_settlements
from shared.services.delivery import Outbox, deliver, schedule_recovery
from shared.services.payment_retry import retry_due_payments
from shared.services.ports import AccountUnitOfWork, AuditLog, DueEntry, DueIndex, WebhookLedger, whole_second_up
from shared.services.settle_balance import Payments, reconcile_settlements

log = logging.getLogger(__name__)
# Rounds per account: the milestone commit, the purge commit after a deletion, and retries after lost races.
MAX_ROUNDS = 8


class RetentionReport(Frozen):
    """What one run did (or would do, in a dry run): counts for the logs, the actions for the operator."""

    at: datetime
    dry_run: bool
    entries_due: int = 0
    accounts_reviewed: int = 0
    accounts_failed: int = 0
    budget_exhausted: bool = False
    emails_sent: int = 0
    emails_retrying: int = 0
    events_published: int = 0
    webhook_ids_purged: int = 0
    counts: dict[RetentionActionKind, int] = Field(default_factory=dict)
    actions: tuple[RetentionAction, ...] = ()

    def summary(self) -> dict[str, object]:
        """Counts only, no ids: what the timer logs."""
        return {
            "dry_run": self.dry_run,
            "entries_due": self.entries_due,
            "accounts_reviewed": self.accounts_reviewed,
            "accounts_failed": self.accounts_failed,
            "budget_exhausted": self.budget_exhausted,
            "emails_sent": self.emails_sent,
            "emails_retrying": self.emails_retrying,
            "webhook_ids_purged": self.webhook_ids_purged,
            "events_published": self.events_published,
            **{kind.value: count for kind, count in sorted(self.counts.items())},
        }


class RetentionIncompleteError(Exception):
    """An account kept changing under the run; it stays due and the next run tries again."""


@dataclass
class _Tally:
    entries_due: int = 0
    accounts_reviewed: int = 0
    accounts_failed: int = 0
    budget_exhausted: bool = False
    emails_sent: int = 0
    emails_retrying: int = 0
    events_published: int = 0
    webhook_ids_purged: int = 0
    actions: list[RetentionAction] = field(default_factory=list)


@dataclass(frozen=True)
class _Reviewed:
    completed: bool
    next_entry: DueEntry | None = None


@dataclass(frozen=True)
class Retention:
    """The ports a retention run touches."""

    accounts: AccountUnitOfWork
    due: DueIndex
    audit: AuditLog
    webhooks: WebhookLedger
    outbox: Outbox
    payments: Payments
    clock: Clock
    policies: DunningPolicies
    portal_base_url: str


@dataclass(frozen=True)
class _Run:
    ports: Retention
    now: datetime
    dry_run: bool


def run_retention(
    ports: Retention,
    *,
    now: datetime,
    time_budget: timedelta,
    dry_run: bool = False,
    monotonic: Callable[[], float] = time.monotonic,
) -> RetentionReport:
    """Carry out every retention step due at `now`, oldest first, until done or `time_budget` is spent."""
    deadline = monotonic() + time_budget.total_seconds()
    run = _Run(ports, now, dry_run)
    tally = _Tally()
    reviewed: dict[str, _Reviewed] = {}
    for entry in ports.due.due(now):
        if entry.account_id not in reviewed:
            if monotonic() >= deadline:
                tally.budget_exhausted = True
                break
            reviewed[entry.account_id] = _review_or_fail(run, entry.account_id, tally)
        tally.entries_due += 1
        outcome = reviewed[entry.account_id]
        if not dry_run and outcome.completed and not entry.same_row(outcome.next_entry):
            ports.due.remove(entry)
    if not dry_run and not tally.budget_exhausted:
        tally.webhook_ids_purged = ports.webhooks.purge_expired(now)
    counts = Counter(action.kind for action in tally.actions)
    return RetentionReport(
        at=now,
        dry_run=dry_run,
        entries_due=tally.entries_due,
        accounts_reviewed=tally.accounts_reviewed,
        accounts_failed=tally.accounts_failed,
        budget_exhausted=tally.budget_exhausted,
        emails_sent=tally.emails_sent,
        emails_retrying=tally.emails_retrying,
        events_published=tally.events_published,
        webhook_ids_purged=tally.webhook_ids_purged,
        counts=dict(counts),
        actions=tuple(tally.actions),
    )


class AccountReviewed(Frozen):
    """What reviewing one account did; `next_entry` is its next review, already on the index."""

    account_id: str
    next_entry: DueEntry | None
    actions: tuple[RetentionAction, ...] = ()
    emails_sent: int = 0
    emails_retrying: int = 0
    events_published: int = 0


def review_account(ports: Retention, account_id: str, *, now: datetime) -> AccountReviewed:
    """Apply everything due to one account at `now` and deliver its outbox (the queue worker's unit of work).

    The caller removes the due entries it was given once this returns, except the one `next_entry` names.
    """
    tally = _Tally()
    next_entry = _review_account(_Run(ports, now, dry_run=False), account_id, tally)
    return AccountReviewed(
        account_id=account_id,
        next_entry=next_entry,
        actions=tuple(tally.actions),
        emails_sent=tally.emails_sent,
        emails_retrying=tally.emails_retrying,
        events_published=tally.events_published,
    )


def _review_or_fail(run: _Run, account_id: str, tally: _Tally) -> _Reviewed:
    tally.accounts_reviewed += 1
    try:
        return _Reviewed(completed=True, next_entry=_review_account(run, account_id, tally))
    except TransientStorageError:
        raise
    except Exception as error:
        # One broken account must not stop the others; it stays due. No message: it may quote personal data.
        log.error("retention: account %s failed with %s; it stays due", account_id, type(error).__name__)
        tally.accounts_failed += 1
        return _Reviewed(completed=False)


def _review_account(run: _Run, account_id: str, tally: _Tally) -> DueEntry | None:
    """Apply everything due to one account; returns the due entry of its next review, if it has one."""
    ports = run.ports
    partition = ports.accounts.load(account_id)
    if not run.dry_run and pending_card_settlements(partition):
        partition = _finish_pending_settlements(run, account_id)
    retry_policy = ports.policies.for_account(partition.account)
    partition = retry_due_payments(ports.payments, partition, retry_policy, now=run.now, dry_run=run.dry_run)
    scheduled: DueEntry | None = None
    for _ in range(MAX_ROUNDS):
        policy = ports.policies.for_account(partition.account)
        plan = plan_account(partition, policy, run.now, portal_url=ports.portal_base_url)
        if not plan.changed:
            break
        if run.dry_run:
            tally.actions += plan.actions
            continue
        scheduled = _schedule_next_review(run, account_id, plan, scheduled)
        try:
            _commit(run, partition, plan)
        except ConcurrencyError:
            partition = ports.accounts.load(account_id)
            continue
        tally.actions += plan.actions
    else:
        raise RetentionIncompleteError(f"account {account_id} still changing after {MAX_ROUNDS} rounds")
    if run.dry_run:
        return None
    # Before the consumed entry goes, the next review must be on the index (a no-op upsert if it already is).
    scheduled = _schedule_next_review(run, account_id, plan, scheduled)
    delivery = deliver(ports.outbox, account_id, partition)
    tally.emails_sent += len(delivery.sent)
    tally.emails_retrying += len(delivery.retrying)
    tally.events_published += len(delivery.published)
    return scheduled


def _finish_pending_settlements(run: _Run, account_id: str) -> AccountPartition:
    """A card charge whose outcome was unknown (gateway timeout, crash) is completed from the gateway's record."""
    reconcile_settlements(run.ports.payments, account_id)
    partition = run.ports.accounts.load(account_id)
    if pending_card_settlements(partition):
        schedule_recovery(run.ports.outbox, account_id)
    return partition


def _commit(run: _Run, partition: AccountPartition, plan: AccountPlan) -> None:
    # The audit record must exist before the data it describes is purged; writing it again changes nothing.
    for record in plan.audit_records:
        run.ports.audit.record_deletion(record)
    for hold_record in plan.hold_records:
        run.ports.audit.record_hold(hold_record)
    run.ports.accounts.commit(partition)


def _schedule_next_review(run: _Run, account_id: str, plan: AccountPlan, scheduled: DueEntry | None) -> DueEntry | None:
    if plan.next_review is None:
        return scheduled
    if scheduled is not None and scheduled == DueEntry(account_id, whole_second_up(plan.next_review)):
        return scheduled
    return run.ports.due.schedule(account_id, plan.next_review)

"""Deliver what an account's committed changes owe the outside world: pending emails and lifecycle events.

Each effect was recorded in the same transaction as its cause. Delivery comes after the commit and is safe to
repeat: an email's operation id is derived from the notification, so ACS (and the local outbox) drop a repeat;
lifecycle events carry stable ids that consumers de-duplicate by. Whatever is still pending is put on the due
index, so a later review finishes the job if this process does not; a delivery that went through leaves nothing
there (the caller's safety-net entry, if it scheduled one, is removed). One effect that cannot go out holds up no other:
a lifecycle event the queue refuses stays pending (the operator sees it in `show-account`), the emails are sent
and recorded all the same. Each sent email's message id goes into the message index just before the commit that
records the send (the index lives in another table, so no transaction holds both): a delivery report can always
be mapped back to its notification.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from shared.domain.clock import Clock
from shared.domain.email import EmailRenderingError, OutgoingEmail, SendOutcome, SendStatus
from shared.domain.errors import ConcurrencyError
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.partition import AccountPartition
from shared.services.ports import (
    AccountUnitOfWork,
    DueEntry,
    DueIndex,
    EmailRenderer,
    EmailSender,
    LifecyclePublisher,
    MessageIndex,
    PublishReport,
    SentMessage,
)
from shared.services.unit_of_work import with_fresh_partition

log = logging.getLogger(__name__)
# If a delivery attempt dies before it records its outcome, the timer looks again after this long.
RECOVERY_DELAY = timedelta(minutes=5)


@dataclass(frozen=True)
class Outbox:
    """The ports that deliver an account's outbox."""

    store: AccountUnitOfWork
    due: DueIndex
    email: EmailSender
    renderer: EmailRenderer
    events: LifecyclePublisher
    messages: MessageIndex
    clock: Clock


# A lifecycle event that could not be published is tried again after a delay that grows with its age.
_EVENT_RETRY_CAP = timedelta(hours=6)


@dataclass
class DeliveryReport:
    sent: list[str] = field(default_factory=list)
    retrying: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)  # stay pending, tried again later


def schedule_recovery(outbox: Outbox, account_id: str) -> DueEntry:
    """Put a safety net on the due index before committing effects, in case delivery never happens; pass it to
    `deliver`, which removes it once nothing is left to deliver (a delivery that succeeded defers no work)."""
    entry = recovery_entry(outbox, account_id)
    return outbox.due.schedule(entry.account_id, entry.due_at)


def recovery_entry(outbox: Outbox, account_id: str) -> DueEntry:
    """The safety-net entry, for a caller that schedules it together with its own entries."""
    return DueEntry(account_id, outbox.clock.now() + RECOVERY_DELAY)


def deliver(
    outbox: Outbox,
    account_id: str,
    partition: AccountPartition | None = None,
    *,
    recovery: DueEntry | None = None,
) -> DeliveryReport:
    """Send due notifications and publish pending lifecycle events of one account, then record that in one commit.

    Pass the partition the caller just committed to save a read, and the safety-net entry it scheduled, if any.
    A crash after sending and before recording is harmless: the next attempt sends with the same operation ids
    and publishes with the same event ids.
    """
    report = DeliveryReport()
    partition = partition or outbox.store.load(account_id)
    now = outbox.clock.now()
    outcomes = [
        _send(outbox, account_id, notification, report)
        for notification in sorted(partition.notifications, key=lambda n: n.created_at)
        if notification.is_due(now)
    ]
    published = _publish(outbox, account_id, partition, report)

    def record(current: AccountPartition) -> AccountPartition:
        for outcome in outcomes:
            stored = current.get(Notification, outcome.id)
            if stored is not None and stored.is_pending:
                current.put(outcome)
        current.delete(*published)
        return current

    for outcome in outcomes:
        if outcome.message_id is not None and not outcome.is_pending:
            outbox.messages.remember(SentMessage(outcome.message_id, account_id, outcome.id))
    if outcomes or published:
        try:
            outbox.store.commit(record(partition))
        except ConcurrencyError:
            partition = with_fresh_partition(outbox.store, account_id, record)
    _schedule_what_is_left(outbox, account_id, partition, report, now=now, recovery=recovery)
    return report


def _schedule_what_is_left(
    outbox: Outbox,
    account_id: str,
    partition: AccountPartition,
    report: DeliveryReport,
    *,
    now: datetime,
    recovery: DueEntry | None,
) -> None:
    next_attempt = _next_attempt(partition, now) if report.retrying or report.unpublished else None
    if next_attempt is not None:
        scheduled = outbox.due.schedule(account_id, next_attempt)
        if recovery is not None and not recovery.same_row(scheduled):
            outbox.due.remove(recovery)  # the retry's own entry is the safety net now
    elif recovery is not None and not _undelivered(partition, now):
        outbox.due.remove(recovery)


def _undelivered(partition: AccountPartition, now: datetime) -> bool:
    """Anything still owed once this delivery is recorded (a notification not yet due counts: it has its entry)."""
    return any(n.is_pending and n.is_due(now) for n in partition.notifications) or bool(partition.pending_events)


def _publish(
    outbox: Outbox, account_id: str, partition: AccountPartition, report: DeliveryReport
) -> list[LifecycleEvent]:
    """Publish the pending events in the order they were decided; returns those that went out."""
    pending = sorted(partition.pending_events, key=lambda e: (e.time, e.id))
    if not pending:
        return []
    try:
        outcome = outbox.events.publish_batch(pending)
    except Exception:  # a publisher that raises instead of reporting still holds up nothing else
        log.exception("account %s: publishing lifecycle events failed", account_id)
        outcome = PublishReport(failed=tuple(e.id for e in pending), error="the publisher raised")
    went_out = set(outcome.published)
    report.published += [e.id for e in pending if e.id in went_out]
    report.unpublished += [e.id for e in pending if e.id not in went_out]
    if report.unpublished:
        log.warning(
            "account %s: %d lifecycle event(s) stay pending (%s)", account_id, len(report.unpublished), outcome.error
        )
    return [e for e in pending if e.id in went_out]


def _send(outbox: Outbox, account_id: str, notification: Notification, report: DeliveryReport) -> Notification:
    """Send one email; returns the notification as it must be recorded: sent, retrying or failed."""
    try:
        rendered = outbox.renderer.render(notification.template, notification.locale, notification.context)
    except EmailRenderingError as error:
        # A template bug would fail the same way on every retry; set this email aside, deliver the others.
        outcome = SendOutcome.failed(f"rendering: {type(error).__name__}")
    else:
        outcome = outbox.email.send(
            OutgoingEmail(
                operation_id=_operation_id(account_id, notification),
                to_address=notification.to_address,
                to_name=None,
                subject=rendered.subject,
                plain_text=rendered.plain_text,
                html=rendered.html,
            )
        )
    now = outbox.clock.now()
    if outcome.status is SendStatus.SENT:
        updated = notification.mark_sent(outcome.message_id, now)
        report.sent.append(notification.id)
    elif outcome.status is SendStatus.RETRY:
        retry_after = timedelta(seconds=outcome.retry_after_seconds) if outcome.retry_after_seconds else None
        updated = notification.mark_retry(outcome.error or "retry", now, retry_after)
        (report.retrying if updated.is_pending else report.failed).append(notification.id)
    else:
        updated = notification.mark_failed(outcome.error or "failed", now)
        report.failed.append(notification.id)
    log.info("notification %s: %s (attempt %d)", notification.id, updated.status, updated.attempts)
    return updated


def _operation_id(account_id: str, notification: Notification) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pastdue:{account_id}:{notification.id}"))


def _next_attempt(partition: AccountPartition, now: datetime) -> datetime | None:
    pending = [n.next_attempt_at for n in partition.notifications if n.is_pending]
    pending += [now + min(max(now - e.time, RECOVERY_DELAY), _EVENT_RETRY_CAP) for e in partition.pending_events]
    return min(pending) if pending else None

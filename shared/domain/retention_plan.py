"""What the retention timer does to one account at one moment, decided on its loaded partition (no I/O here).

`plan_account` stages every change on the partition (the unit of work) and returns what it did; the caller commits.
Every effect has a deterministic id (subscription, milestone, offset, reference moment), and an effect that already
exists is never staged again, so planning the same moment twice, or after a crash, adds nothing twice. Deleting is
two steps: the subscription becomes a `Deleted` tombstone (irreversible) in one commit, and the next plan purges
its data after the audit record is written; a purge that stopped halfway is therefore finished by the next run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, JsonValue

from shared.domain.audit import AuditedCharge, DeletionRecord, HoldRecord
from shared.domain.dunning_dates import subscription_dates
from shared.domain.effect_ids import ID_PREFIX, effect_id
from shared.domain.errors import DomainError
from shared.domain.holds import release_expired_hold
from shared.domain.idempotency import IdempotencyRecord
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.lifecycle_events import (
    RetentionStep,
    subscription_deleted,
    subscription_disabled,
    subscription_enabled,
)
from shared.domain.links import settle_url
from shared.domain.model import (
    Account,
    Alert,
    AlertKind,
    Charge,
    Frozen,
    Identifier,
    PaymentMethod,
    Subscription,
)
from shared.domain.money import Money, total
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.partition import AccountPartition
from shared.domain.payment_retry import retrying_subscription_ids
from shared.domain.retention_policy import (
    Milestone,
    MilestoneKind,
    RetentionPolicy,
    cancellation_date,
    deletion_allowed,
    deletion_date,
    due_milestones,
    next_review_at,
)
from shared.domain.settlement import Settlement, failed_method_of, settlement_scope

# Milestones re-evaluated after a state change in the same plan (PastDue -> Warned -> Disabled at most).
_MAX_STEPS = 4


class Template(StrEnum):
    REMINDER = "retention_reminder"
    FINAL_NOTICE = "retention_final_notice"
    DISABLED = "retention_disabled"
    DELETION_WARNING = "retention_deletion_warning"
    DELETED = "retention_deleted"
    REENABLED = "retention_reenabled"


# Notices that only make sense while the balance is unpaid; withdrawn if still unsent once it is paid.
_UNPAID_NOTICES = frozenset({Template.REMINDER, Template.FINAL_NOTICE, Template.DISABLED, Template.DELETION_WARNING})
_RETENTION_ALERTS = frozenset({AlertKind.WILL_BE_DISABLED, AlertKind.DISABLED, AlertKind.DELETION_SCHEDULED})


class RetentionActionKind(StrEnum):
    REMINDER = "reminder"
    FINAL_NOTICE = "final_notice"
    DISABLED = "disabled"
    DELETION_WARNING = "deletion_warning"
    DELETED = "deleted"
    PURGED = "purged"
    REENABLED = "reenabled"
    SUPERSEDED = "superseded"
    NOTICE_WITHDRAWN = "notice_withdrawn"


class RetentionAction(Frozen):
    """One thing a run did (or, in a dry run, would do) to one subscription; ids and dates only."""

    account_id: Identifier
    subscription_id: Identifier
    kind: RetentionActionKind
    milestone: MilestoneKind | None = None
    milestone_at: datetime | None = None
    offset_days: int = 0
    # The date the customer is told about: cancellation for notices before it, deletion after it.
    effective_date: date | None = None


@dataclass
class AccountPlan:
    actions: list[RetentionAction] = field(default_factory=list)
    audit_records: list[DeletionRecord] = field(default_factory=list)
    hold_records: list[HoldRecord] = field(default_factory=list)
    changed: bool = False
    next_review: datetime | None = None


def referenced_subscriptions(notification: Notification, subscription_ids: set[str]) -> set[str]:
    """The account's subscriptions a notification is about: their ids anywhere among its context's values."""
    found: set[str] = set()
    pending: list[JsonValue] = [notification.context]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if value in subscription_ids:
                found.add(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return found


class _Stage:
    """Stages rows on the partition only when they differ from what is there, and remembers whether it did."""

    def __init__(self, partition: AccountPartition) -> None:
        self.partition = partition
        self.changed = False

    def put(self, *models: BaseModel) -> None:
        for model in models:
            if self.partition.stored(model) != model:
                self.partition.put(model)
                self.changed = True

    def put_new(self, model: BaseModel) -> bool:
        """Stage a row that must be written once: an existing row of that id stays as it is."""
        if self.partition.holds(model):
            return False
        self.put(model)
        return True

    def delete(self, *models: BaseModel) -> None:
        for model in models:
            if self.partition.holds(model):
                self.partition.delete(model)
                self.changed = True


@dataclass
class _Planner:
    partition: AccountPartition
    account: Account
    policy: RetentionPolicy
    now: datetime
    portal_url: str
    stage: _Stage
    plan: AccountPlan = field(default_factory=AccountPlan)

    @property
    def held(self) -> bool:
        return self.account.hold is not None

    # --- decisions per subscription ---------------------------------------------------------------------------

    def review(self, subscription: Subscription) -> Subscription:
        if subscription.state is SubscriptionState.DELETED:
            return subscription
        if subscription.state is SubscriptionState.ENABLED:
            self.withdraw_unpaid_notices(subscription)
            return subscription
        if not self.outstanding(subscription):
            return self.heal(subscription)
        if self.held:
            return subscription
        for _ in range(_MAX_STEPS):
            state = subscription.state
            subscription = self.apply_due(subscription)
            if subscription.state is state:
                break
        return subscription

    def apply_due(self, subscription: Subscription) -> Subscription:
        due = due_milestones(subscription, self.policy, self.now)
        for milestone in due.superseded:
            if not self.notice_exists(subscription, milestone):
                self.act(subscription, RetentionActionKind.SUPERSEDED, milestone)
        for milestone in due.actionable:
            subscription = self.apply(subscription, milestone)
        return subscription

    def apply(self, subscription: Subscription, milestone: Milestone) -> Subscription:
        if milestone.kind is MilestoneKind.REMINDER:
            self.remind(subscription, milestone)
        elif milestone.kind is MilestoneKind.WARN:
            subscription = self.warn(subscription, milestone)
        elif milestone.kind is MilestoneKind.DISABLE:
            subscription = self.disable(subscription, milestone)
        elif milestone.kind is MilestoneKind.DELETION_WARNING:
            self.warn_of_deletion(subscription, milestone)
        elif milestone.kind is MilestoneKind.DELETE and deletion_allowed(subscription, self.now):
            subscription = self.delete(subscription, milestone)
        return subscription

    def remind(self, subscription: Subscription, milestone: Milestone) -> None:
        cancel_at = cancellation_date(subscription, self.policy)
        if self.notify_of(subscription, Template.REMINDER, milestone, subscription.past_due_since):
            self.act(subscription, RetentionActionKind.REMINDER, milestone, cancel_at)

    def warn(self, subscription: Subscription, milestone: Milestone) -> Subscription:
        cancel_at = cancellation_date(subscription, self.policy)
        changed = subscription.state is SubscriptionState.PAST_DUE
        if changed:
            subscription = subscription.transition(
                SubscriptionState.WARNED, TransitionReason.CANCELLATION_NEAR, self.now
            )
        changed |= self.notify_of(subscription, Template.FINAL_NOTICE, milestone, subscription.past_due_since)
        changed |= self.alert(subscription, AlertKind.WILL_BE_DISABLED, subscription.past_due_since, cancel_at)
        if changed:
            self.act(subscription, RetentionActionKind.FINAL_NOTICE, milestone, cancel_at)
        return subscription

    def disable(self, subscription: Subscription, milestone: Milestone) -> Subscription:
        reference = subscription.past_due_since
        subscription = subscription.transition(
            SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, self.now
        )
        delete_at = deletion_date(subscription, self.policy)
        self.notify_of(subscription, Template.DISABLED, milestone, reference)
        self.publish(
            subscription_disabled(
                self.account.id, subscription, self.policy, cause=RetentionStep(reference=reference), at=self.now
            )
        )
        self.resolve_alerts(subscription.id, {AlertKind.WILL_BE_DISABLED})
        self.alert(subscription, AlertKind.DISABLED, reference, delete_at)
        self.act(subscription, RetentionActionKind.DISABLED, milestone, delete_at)
        return subscription

    def warn_of_deletion(self, subscription: Subscription, milestone: Milestone) -> None:
        delete_at = deletion_date(subscription, self.policy)
        reference = subscription.disabled_at
        if self.notify_of(subscription, Template.DELETION_WARNING, milestone, reference):
            self.alert(subscription, AlertKind.DELETION_SCHEDULED, reference, delete_at)
            self.act(subscription, RetentionActionKind.DELETION_WARNING, milestone, delete_at)

    def delete(self, subscription: Subscription, milestone: Milestone) -> Subscription:
        reference = subscription.disabled_at
        tombstone = subscription.transition(
            SubscriptionState.DELETED, TransitionReason.RETENTION_ENDED, self.now
        ).model_copy(update={"name": ""})
        self.publish(
            subscription_deleted(self.account.id, tombstone, cause=RetentionStep(reference=reference), at=self.now)
        )
        context: dict[str, JsonValue] = {
            "subscription_id": tombstone.id,
            "service": tombstone.service,
            "deletion_date": _iso_date(self.now),
            "portal_url": self.portal_url,
        }
        self.notify(tombstone, Template.DELETED, effect_id(milestone.kind.value, reference, tombstone.id, 0), context)
        self.act(tombstone, RetentionActionKind.DELETED, milestone, self.now)
        return tombstone

    def heal(self, subscription: Subscription) -> Subscription:
        """All charges paid, yet not Enabled (a payment landed while a cancellation ran): re-enable it."""
        reference = subscription.past_due_since or subscription.disabled_at
        healed = subscription.reenable(TransitionReason.SELF_HEALED, self.now)
        notification_id = effect_id("reenabled", reference, healed.id)
        self.notify(healed, Template.REENABLED, notification_id, self.email_context(healed))
        self.publish(
            subscription_enabled(
                self.account.id,
                healed,
                cause=RetentionStep(reference=reference),
                reason=TransitionReason.SELF_HEALED,
                at=self.now,
            )
        )
        self.act(healed, RetentionActionKind.REENABLED)
        return healed

    def withdraw_unpaid_notices(self, subscription: Subscription) -> None:
        for notification in self.partition.notifications:
            if (
                notification.is_pending
                and notification.template in _UNPAID_NOTICES
                and notification.id.startswith(f"{ID_PREFIX}.")
                and notification.context.get("subscription_id") == subscription.id
            ):
                self.stage.put(notification.mark_failed("withdrawn: the balance was settled", self.now))
                self.act(subscription, RetentionActionKind.NOTICE_WITHDRAWN)

    # --- effects ----------------------------------------------------------------------------------------------

    def notify_of(
        self, subscription: Subscription, template: Template, milestone: Milestone, reference: datetime | None
    ) -> bool:
        notification_id = effect_id(milestone.kind.value, reference, subscription.id, milestone.offset_days)
        return self.notify(subscription, template, notification_id, self.email_context(subscription))

    def notify(
        self, subscription: Subscription, template: Template, notification_id: str, context: dict[str, JsonValue]
    ) -> bool:
        notification = Notification(
            id=notification_id,
            template=template.value,
            locale=self.account.locale,
            to_address=self.account.notification_email,
            context=context,
            created_at=self.now,
            next_attempt_at=self.now,
        )
        return self.stage.put_new(notification)

    def notice_exists(self, subscription: Subscription, milestone: Milestone) -> bool:
        reference = subscription.past_due_since
        if milestone.kind is MilestoneKind.DELETION_WARNING:
            reference = subscription.disabled_at
        notification_id = effect_id(milestone.kind.value, reference, subscription.id, milestone.offset_days)
        return self.partition.get(Notification, notification_id) is not None

    def publish(self, event: LifecycleEvent) -> None:
        self.stage.put_new(event)

    def alert(
        self, subscription: Subscription, kind: AlertKind, reference: datetime | None, effective: datetime | None
    ) -> bool:
        alert = Alert(
            id=effect_id(f"alert-{kind.value}", reference, subscription.id),
            kind=kind,
            payment_method_id=subscription.payment_method_id,
            subscription_ids=(subscription.id,),
            created_at=self.now,
            effective_date=effective.date() if effective else None,
        )
        return self.stage.put_new(alert)

    def resolve_alerts(self, subscription_id: str, kinds: Iterable[AlertKind]) -> None:
        wanted = set(kinds)
        for alert in self.partition.alerts:
            if alert.is_open and alert.kind in wanted and alert.subscription_ids == (subscription_id,):
                self.stage.put(alert.resolve(self.now))

    def resolve_settled_alerts(self, subscriptions: list[Subscription]) -> None:
        """Open alerts about subscriptions that are all Enabled (or gone) have lost their cause."""
        states = {s.id: s.state for s in subscriptions}
        settled = {SubscriptionState.ENABLED, SubscriptionState.DELETED}
        for alert in self.partition.alerts:
            ids = alert.subscription_ids
            if alert.is_open and ids and all(states.get(i, SubscriptionState.DELETED) in settled for i in ids):
                self.stage.put(alert.resolve(self.now))

    def act(
        self,
        subscription: Subscription,
        kind: RetentionActionKind,
        milestone: Milestone | None = None,
        effective: datetime | None = None,
    ) -> None:
        self.plan.actions.append(
            RetentionAction(
                account_id=self.account.id,
                subscription_id=subscription.id,
                kind=kind,
                milestone=milestone.kind if milestone else None,
                milestone_at=milestone.at if milestone else None,
                offset_days=milestone.offset_days if milestone else 0,
                effective_date=effective.date() if effective else None,
            )
        )

    # --- reading the partition --------------------------------------------------------------------------------

    def outstanding(self, subscription: Subscription) -> list[Charge]:
        return [c for c in self.partition.charges if c.subscription_id == subscription.id and c.is_outstanding]

    def email_context(self, subscription: Subscription) -> dict[str, JsonValue]:
        charges = self.partition.charges
        failed_method_id = failed_method_of(subscription, charges) or subscription.payment_method_id
        method = self.partition.get(PaymentMethod, failed_method_id)
        dates = subscription_dates(subscription, self.policy)
        cancel_at, delete_at = dates.cancellation, dates.deletion
        due = self.amount_due(subscription, charges)
        return {
            "subscription_id": subscription.id,
            "subscription_name": subscription.name,
            "service": subscription.service,
            "amount_due": due.amount if due else None,
            "currency": due.currency if due else self.account.currency,
            "payment_method": method.display_name if method else None,
            "hard_decline": bool(method and method.failed_reason and method.failed_reason.is_hard),
            "cancellation_date": _iso_date(cancel_at),
            "days_until_cancellation": self.days_until(cancel_at),
            "deletion_date": _iso_date(delete_at),
            "days_until_deletion": self.days_until(delete_at),
            "retention_days": self.policy.effective_retention_days,
            "settle_url": settle_url(self.portal_url, self.account.id, subscription.id),
            "portal_url": self.portal_url,
        }

    def days_until(self, moment: datetime | None) -> int | None:
        return max((moment.date() - self.now.date()).days, 0) if moment else None

    def amount_due(self, subscription: Subscription, charges: list[Charge]) -> Money | None:
        """The whole balance that brings the subscription back (the settle-balance rule), if it can be told."""
        try:
            return settlement_scope(subscription, charges, self.account.currency).total
        except DomainError:
            return None


def plan_account(
    partition: AccountPartition, policy: RetentionPolicy, now: datetime, *, portal_url: str
) -> AccountPlan:
    """Stage every retention step due at `now` on the account's partition; returns what was staged and why."""
    if partition.account is None:
        return AccountPlan()
    # A hold whose end has come is released first, so the deadlines it moved are reviewed in the same plan.
    released = release_expired_hold(partition, now)
    assert partition.account is not None
    planner = _Planner(partition, partition.account, policy, now, portal_url, _Stage(partition))
    if released is not None:
        planner.plan.hold_records += released.records
        planner.stage.changed = True
    reviewed = [planner.review(subscription) for subscription in sorted(partition.subscriptions, key=lambda s: s.id)]
    planner.resolve_settled_alerts(reviewed)
    if not planner.held:  # a hold keeps every row, even the data of a subscription deleted before it
        _purge_deleted(planner)
    # The subscription rows carry the state that marks a milestone done: staged last, written last.
    planner.stage.put(*reviewed)
    plan = planner.plan
    plan.changed = planner.stage.changed
    plan.next_review = _next_review(partition, policy, now)
    return plan


def _next_review(partition: AccountPartition, policy: RetentionPolicy, now: datetime) -> datetime | None:
    moments = [n.next_attempt_at for n in partition.notifications if n.is_pending and n.next_attempt_at > now]
    hold = partition.account.hold if partition.account else None
    retrying = retrying_subscription_ids(partition)
    milestone = (
        hold.until if hold is not None else next_review_at(partition.subscriptions, policy, now, retrying=retrying)
    )
    if milestone is not None:
        moments.append(milestone)
    return min(moments) if moments else None


# --- purging the data of deleted subscriptions --------------------------------------------------------------------


@dataclass
class _Purge:
    charges: list[Charge]
    alerts_deleted: list[Alert]
    alerts_trimmed: list[Alert]
    notifications: dict[str, tuple[Notification, set[str]]]
    settlements: list[Settlement]
    idempotency_records: list[IdempotencyRecord]
    payment_methods: list[PaymentMethod]

    @property
    def rows(self) -> list[BaseModel]:
        return [
            *self.charges,
            *self.alerts_deleted,
            *(notification for notification, _ in self.notifications.values()),
            *self.settlements,
            *self.idempotency_records,
            *self.payment_methods,
        ]

    def subscriptions_with_data(self, deleted: set[str]) -> set[str]:
        found = {c.subscription_id for c in self.charges}
        found.update(i for a in (*self.alerts_deleted, *self.alerts_trimmed) for i in a.subscription_ids)
        found.update(i for _, refs in self.notifications.values() for i in refs)
        found.update(s.subscription_id for s in self.settlements)
        return found & deleted


def _purge_deleted(planner: _Planner) -> None:
    partition = planner.partition
    deleted = {s.id for s in partition.subscriptions if s.state is SubscriptionState.DELETED}
    if not deleted:
        return
    purge = _purge_scope(partition, deleted)
    if not purge.rows and not purge.alerts_trimmed:
        return
    for subscription_id in sorted(purge.subscriptions_with_data(deleted)):
        tombstone = partition.get(Subscription, subscription_id)
        if tombstone is not None:
            planner.plan.audit_records.append(_deletion_record(planner, tombstone, purge))
            planner.act(tombstone, RetentionActionKind.PURGED)
    planner.stage.put(*purge.alerts_trimmed)
    planner.stage.delete(*purge.rows)


def _purge_scope(partition: AccountPartition, deleted: set[str]) -> _Purge:
    charges = [c for c in partition.charges if c.subscription_id in deleted]
    alerts_deleted: list[Alert] = []
    alerts_trimmed: list[Alert] = []
    for alert in partition.alerts:
        kept = tuple(i for i in alert.subscription_ids if i not in deleted)
        if kept == alert.subscription_ids:
            continue
        if kept:
            alerts_trimmed.append(alert.model_copy(update={"subscription_ids": kept}))
        else:
            alerts_deleted.append(alert)
    notifications = _notifications_to_purge(partition, deleted)
    invoice_owner = {c.invoice_id: c.subscription_id for c in partition.charges}
    settlements = [s for s in partition.all(Settlement) if _settlement_subscriptions(s, invoice_owner) <= deleted]
    purged_settlements = {s.id for s in settlements}
    idempotency = [r for r in partition.all(IdempotencyRecord) if r.settlement_id in purged_settlements]
    payment_methods = _orphaned_payment_methods(partition, deleted, charges, settlements)
    return _Purge(charges, alerts_deleted, alerts_trimmed, notifications, settlements, idempotency, payment_methods)


def _notifications_to_purge(partition: AccountPartition, deleted: set[str]) -> dict[str, tuple[Notification, set[str]]]:
    """Emails about a deleted subscription: all of them, except the deletion notice itself and unsent ones that also
    concern a live subscription (those still have to go out)."""
    everyone = {s.id for s in partition.subscriptions}
    found: dict[str, tuple[Notification, set[str]]] = {}
    for notification in partition.notifications:
        refs = referenced_subscriptions(notification, everyone)
        if notification.template == Template.DELETED or not refs & deleted:
            continue
        if notification.is_pending and refs - deleted:
            continue
        found[notification.id] = (notification, refs & deleted)
    return found


def _settlement_subscriptions(settlement: Settlement, invoice_owner: dict[str, str]) -> set[str]:
    return {
        settlement.subscription_id,
        *settlement.reenabled_subscription_ids,
        *settlement.switched_subscription_ids,
        *(invoice_owner[i] for i in settlement.invoice_ids if i in invoice_owner),
    }


def _orphaned_payment_methods(
    partition: AccountPartition, deleted: set[str], charges: list[Charge], settlements: list[Settlement]
) -> list[PaymentMethod]:
    """Methods the deleted subscriptions used that nothing else (live subscription, charge, settlement) refers to."""
    candidates = {s.payment_method_id for s in partition.subscriptions if s.id in deleted}
    candidates.update(c.payment_method_id for c in charges)
    candidates.update(m for s in settlements for m in (s.failed_payment_method_id, s.payment_method_id))
    purged_settlements = {s.id for s in settlements}
    purged_charges = {c.invoice_id for c in charges}
    in_use = {s.payment_method_id for s in partition.subscriptions if s.id not in deleted}
    in_use.update(c.payment_method_id for c in partition.charges if c.invoice_id not in purged_charges)
    in_use.update(
        m
        for s in partition.all(Settlement)
        if s.id not in purged_settlements
        for m in (s.failed_payment_method_id, s.payment_method_id)
    )
    return [m for m in partition.payment_methods if m.id in candidates - in_use]


def _deletion_record(planner: _Planner, tombstone: Subscription, purge: _Purge) -> DeletionRecord:
    charges = sorted((c for c in purge.charges if c.subscription_id == tombstone.id), key=lambda c: c.invoice_id)
    deleted_at = next(
        (t.at for t in reversed(tombstone.history) if t.to_state is SubscriptionState.DELETED), planner.now
    )
    outstanding = [c.amount for c in charges if c.is_outstanding]
    currencies = sorted({m.currency for m in outstanding})
    return DeletionRecord(
        account_id=planner.account.id,
        subscription_id=tombstone.id,
        service=tombstone.service,
        past_due_since=tombstone.past_due_since,
        disabled_at=tombstone.disabled_at,
        deleted_at=deleted_at,
        purged_at=planner.now,
        charges=tuple(
            AuditedCharge(
                invoice_id=c.invoice_id,
                amount=c.amount,
                due_date=c.due_date,
                status=c.status,
                paid_at=c.paid_at,
                settlement_id=c.settlement_id,
            )
            for c in charges
        ),
        outstanding=tuple(total([m for m in outstanding if m.currency == code], code) for code in currencies),
        settlement_ids=tuple(sorted(s.id for s in purge.settlements if s.subscription_id == tombstone.id)),
        payment_method_ids=tuple(sorted(m.id for m in purge.payment_methods)),
    )


def _iso_date(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).date().isoformat() if moment else None

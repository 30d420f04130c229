"""What the settle-balance services answer: camelCase views with decimal-string amounts, built from a partition.

The settle rule lives in shared/domain/settlement.py and the quote's version in shared/domain/settle_balance.py;
this module only arranges their results for the portal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from shared.domain.dunning_dates import SubscriptionDates, account_subscription_dates
from shared.domain.holds import HoldChange, HoldOutcome
from shared.domain.idempotency import IdempotencyRecord
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import (
    AlertKind,
    Charge,
    CollectionHold,
    DeclineReason,
    PaymentMethodKind,
    PaymentMethodStatus,
    Subscription,
)
from shared.domain.money import Money, total
from shared.domain.outbox import NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.payment_retry import DeclineClass, RetryOutcome, retry_attempts
from shared.domain.retention_policy import RetentionPolicy
from shared.domain.settle_balance import pending_settlements, quote_version
from shared.domain.settlement import Settlement, SettlementScope, SettlementStatus, failed_method_of

RECENT_NOTIFICATIONS = 10


class View(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    def to_wire(self) -> dict[str, JsonValue]:
        wire: dict[str, JsonValue] = self.model_dump(mode="json", by_alias=True)
        return wire


class MoneyView(View):
    amount: str
    currency: str

    @classmethod
    def of(cls, money: Money) -> MoneyView:
        return cls(amount=money.amount, currency=money.currency)


class DatesView(View):
    """What lies ahead if nobody pays (shared/domain/dunning_dates.py): moments in UTC, null when none applies."""

    next_retry: datetime | None
    warning: datetime | None
    cancellation: datetime | None
    deletion: datetime | None

    @classmethod
    def of(cls, dates: SubscriptionDates) -> DatesView:
        return cls(
            next_retry=dates.next_retry, warning=dates.warning, cancellation=dates.cancellation, deletion=dates.deletion
        )


class SubscriptionView(View):
    id: str
    name: str
    service: str
    state: SubscriptionState
    payment_method_id: str
    outstanding: MoneyView
    can_settle: bool
    dates: DatesView
    past_due_since: datetime | None = None


class AlertView(View):
    id: str
    kind: AlertKind
    payment_method_id: str | None
    subscription_ids: tuple[str, ...]
    created_at: datetime
    effective_date: date | None
    # Only on `notification_address_undeliverable`: the address, and why emails to it cannot be delivered.
    notification_email: str | None = None
    reason: str | None = None
    status_detail: str | None = None


class PaymentMethodView(View):
    id: str
    kind: PaymentMethodKind
    brand: str | None
    last4: str | None
    status: PaymentMethodStatus
    failed_reason: DeclineReason | None


class HoldView(View):
    """A collection hold support placed: no reminder, warning, cancellation or deletion until it ends."""

    reason: str
    set_by: str
    since: datetime
    until: datetime | None


class HoldAnswer(View):
    """What placing or releasing a hold did (`not_held`: there was nothing to release), and the hold as it is now."""

    account_id: str
    outcome: HoldOutcome
    hold: HoldView | None
    # Per subscription: how much later its deadlines fall after this release (ISO 8601 durations).
    deadlines_moved_by: dict[str, timedelta] = Field(default_factory=dict)


class PaymentRetryView(View):
    """One automatic retry of a failed payment and what the gateway answered."""

    attempt: int
    payment_method_id: str
    at: datetime
    amount: MoneyView
    outcome: RetryOutcome
    decline_reason: str | None
    decline_class: DeclineClass | None


class Overview(View):
    account_id: str
    currency: str
    subscriptions: tuple[SubscriptionView, ...]
    alerts: tuple[AlertView, ...]
    payment_methods: tuple[PaymentMethodView, ...]
    payment_retries: tuple[PaymentRetryView, ...]
    hold: HoldView | None = None


class QuoteLine(View):
    subscription_id: str
    subscription_name: str | None
    service: str
    invoice_id: str
    amount: str
    currency: str
    payment_method_id: str
    due_date: date


class Quote(View):
    quote_version: str
    subscription_id: str
    failed_payment_method_id: str
    selected_payment_method_id: str
    total: MoneyView
    lines: tuple[QuoteLine, ...]
    pending_settlement_id: str | None = None


class Remittance(View):
    beneficiary: str
    iban: str
    bic: str
    reference: str
    amount: str
    currency: str


class SettlementOutcome(View):
    settlement_id: str
    status: SettlementStatus
    reason: str | None
    charged: MoneyView
    total: MoneyView
    paid_invoices: tuple[str, ...]
    reenabled_subscriptions: tuple[str, ...]
    switched_subscriptions: tuple[str, ...]
    active_payment_method_id: str
    remittance: Remittance | None = None
    # Not part of the body: the HTTP layer turns it into the Idempotent-Replayed header.
    replayed: bool = Field(default=False, exclude=True)


class NotificationStatusView(View):
    id: str
    template: str
    status: NotificationStatus
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    last_error: str | None
    # The id ACS knows the email by, and the receiving side's words from its latest delivery report (or why sending
    # failed).
    message_id: str | None = None
    status_detail: str | None = None


class NotificationEmailView(View):
    notification_email: str
    locale: str
    changed: bool
    last_notifications: tuple[NotificationStatusView, ...]


def overview_of(partition: AccountPartition, policy: RetentionPolicy, now: datetime) -> Overview:
    """Subscriptions with what they owe, whether settle balance applies and their dates under the account's
    `policy`; open alerts; payment methods."""
    assert partition.account is not None
    currency = partition.account.currency
    charges = partition.charges
    subscriptions = tuple(
        SubscriptionView(
            id=subscription.id,
            name=subscription.name,
            service=subscription.service,
            state=subscription.state,
            payment_method_id=subscription.payment_method_id,
            outstanding=MoneyView.of(
                total(
                    [c.amount for c in charges if c.is_outstanding and c.subscription_id == subscription.id], currency
                )
            ),
            can_settle=can_settle(subscription, charges),
            dates=DatesView.of(account_subscription_dates(partition, subscription, policy, now)),
            past_due_since=subscription.past_due_since,
        )
        for subscription in sorted(partition.subscriptions, key=lambda s: s.id)
    )
    alerts = tuple(
        AlertView(
            id=alert.id,
            kind=alert.kind,
            payment_method_id=alert.payment_method_id,
            subscription_ids=alert.subscription_ids,
            created_at=alert.created_at,
            effective_date=alert.effective_date,
            notification_email=alert.email_address,
            reason=alert.reason,
            status_detail=alert.detail,
        )
        for alert in sorted(partition.alerts, key=lambda a: (a.created_at, a.id))
        if alert.is_open
    )
    methods = tuple(
        PaymentMethodView(
            id=method.id,
            kind=method.kind,
            brand=method.brand,
            last4=method.last4,
            status=method.status,
            failed_reason=method.failed_reason,
        )
        for method in sorted(partition.payment_methods, key=lambda m: m.id)
    )
    retries = tuple(
        PaymentRetryView(
            attempt=attempt.attempt,
            payment_method_id=attempt.payment_method_id,
            at=attempt.at,
            amount=MoneyView.of(attempt.amount),
            outcome=attempt.outcome,
            decline_reason=attempt.decline_reason,
            decline_class=attempt.decline_class,
        )
        for attempt in retry_attempts(partition)
    )
    return Overview(
        account_id=partition.account_id,
        currency=currency,
        subscriptions=subscriptions,
        alerts=alerts,
        payment_methods=methods,
        payment_retries=retries,
        hold=hold_view(partition.account.hold),
    )


def hold_view(hold: CollectionHold | None) -> HoldView | None:
    return HoldView(reason=hold.reason, set_by=hold.set_by, since=hold.since, until=hold.until) if hold else None


def hold_answer(account_id: str, change: HoldChange) -> HoldAnswer:
    return HoldAnswer(
        account_id=account_id,
        outcome=change.outcome,
        hold=hold_view(change.hold),
        deadlines_moved_by=dict(sorted((change.shifted or {}).items())),
    )


def can_settle(subscription: Subscription, charges: list[Charge]) -> bool:
    return subscription.state is not SubscriptionState.DELETED and failed_method_of(subscription, charges) is not None


def quote_of(partition: AccountPartition, subscription_id: str, scope: SettlementScope) -> Quote:
    """The scope as the portal shows it, versioned by its content and the ETags of the rows it was read from."""
    names = {s.id: s.name for s in partition.subscriptions}
    lines = tuple(
        QuoteLine(
            subscription_id=charge.subscription_id,
            subscription_name=names.get(charge.subscription_id),
            service=charge.service,
            invoice_id=charge.invoice_id,
            amount=charge.amount.amount,
            currency=charge.amount.currency,
            payment_method_id=charge.payment_method_id,
            due_date=charge.due_date,
        )
        for charge in scope.charges
    )
    pending = pending_settlements(partition, scope.invoice_ids)
    return Quote(
        quote_version=quote_version(partition, scope),
        subscription_id=subscription_id,
        failed_payment_method_id=scope.failed_payment_method_id,
        selected_payment_method_id=scope.selected_payment_method_id,
        total=MoneyView.of(scope.total),
        lines=lines,
        pending_settlement_id=pending[0].id if pending else None,
    )


@dataclass(frozen=True)
class SettlementTerms:
    """What settlement answers quote besides the settlement itself: the portal and the wire details."""

    portal_base_url: str
    remittance_beneficiary: str
    remittance_iban: str
    remittance_bic: str


def outcome_of(
    settlement: Settlement, terms: SettlementTerms, partition: AccountPartition | None = None
) -> SettlementOutcome:
    """The answer for a settlement; `partition` tells the subscription's current method when it did not succeed."""
    succeeded = settlement.status is SettlementStatus.SUCCEEDED
    subscription = partition.get(Subscription, settlement.subscription_id) if partition is not None else None
    active = settlement.payment_method_id if succeeded or subscription is None else subscription.payment_method_id
    remittance = None
    if settlement.payment_method_kind is PaymentMethodKind.INVOICE and settlement.reference is not None:
        remittance = Remittance(
            beneficiary=terms.remittance_beneficiary,
            iban=terms.remittance_iban,
            bic=terms.remittance_bic,
            reference=settlement.reference,
            amount=settlement.total.amount,
            currency=settlement.total.currency,
        )
    return SettlementOutcome(
        settlement_id=settlement.id,
        status=settlement.status,
        reason=settlement.reason,
        charged=MoneyView.of(settlement.total if succeeded else Money.zero(settlement.total.currency)),
        total=MoneyView.of(settlement.total),
        paid_invoices=settlement.invoice_ids if succeeded else (),
        reenabled_subscriptions=settlement.reenabled_subscription_ids,
        switched_subscriptions=settlement.switched_subscription_ids,
        active_payment_method_id=active,
        remittance=remittance,
    )


def complete_idempotency_record(
    partition: AccountPartition, settlement: Settlement, terms: SettlementTerms, at: datetime
) -> None:
    """Store the final answer with the Idempotency-Key record, so a repeat of the request replays it."""
    record = partition.get(IdempotencyRecord, settlement.id)
    if record is not None and not record.is_completed:
        partition.put(record.complete(outcome_of(settlement, terms, partition).to_wire(), at))


def notification_view(partition: AccountPartition, *, changed: bool) -> NotificationEmailView:
    assert partition.account is not None
    recent = sorted(partition.notifications, key=lambda n: (n.created_at, n.id), reverse=True)[:RECENT_NOTIFICATIONS]
    return NotificationEmailView(
        notification_email=partition.account.notification_email,
        locale=partition.account.locale,
        changed=changed,
        last_notifications=tuple(
            NotificationStatusView(
                id=n.id,
                template=n.template,
                status=n.status,
                attempts=n.attempts,
                created_at=n.created_at,
                sent_at=n.sent_at,
                last_error=n.last_error,
                message_id=n.message_id,
                status_detail=n.status_detail or n.last_error,
            )
            for n in recent
        ),
    )

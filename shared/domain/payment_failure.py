"""A failed payment, decided: which charges it records, which subscriptions go past due, the alert and the email.

Everything one `payment.failed` changes is staged on the account's partition, with the processed-event marker staged
last: a repeat of the event finds the marker and changes nothing; a commit split over several transactions that dies
half-way is completed by the next delivery, which stages only what is missing. No I/O here.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from enum import StrEnum

from pydantic import BaseModel, JsonValue

from shared.domain.dunning_dates import account_subscription_dates
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.errors import DomainError
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.links import settle_url
from shared.domain.model import (
    Account,
    AccountField,
    Alert,
    AlertKind,
    Charge,
    ChargeStatus,
    Frozen,
    PaymentMethod,
    PaymentMethodStatus,
    ProcessedEvent,
    Subscription,
)
from shared.domain.money import total
from shared.domain.outbox import Notification
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import PAYMENT_FAILED, AccountSnapshot, PaymentFailedData, PaymentFailedEvent
from shared.domain.retention_policy import RetentionPolicy, cancellation_date

NOTIFICATION_TEMPLATE = "payment_failed"
_MAX_ID_LENGTH = 128
_MOVES_TO_PAST_DUE = frozenset({SubscriptionState.ENABLED, SubscriptionState.WARNED})


class EventReplayConflictError(DomainError):
    """An event id arrived again with different content: a producer bug, not a repeat, so it is refused."""


def already_processed(partition: AccountPartition, event_id: str, payload_hash: str) -> bool:
    """True for a repeat of an event the account has processed; EventReplayConflictError if its content differs."""
    marker = partition.has_processed(event_id)
    if marker is None:
        return False
    if marker.payload_hash != payload_hash:
        raise EventReplayConflictError(f"event {event_id} was processed before with different content")
    return True


class AccountCurrencyChangedError(DomainError):
    """The event's account currency differs from the stored account's; balances cannot mix currencies."""


class PaymentFailedOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE = "late"


class PaymentFailedResult(Frozen):
    event_id: str
    account_id: str
    outcome: PaymentFailedOutcome
    past_due_subscription_ids: tuple[str, ...] = ()
    already_settled_invoice_ids: tuple[str, ...] = ()
    notification_id: str | None = None
    emails_sent: tuple[str, ...] = ()
    # Fields the event's account snapshot named differently from the stored account; they were not changed.
    disagreeing_fields: tuple[AccountField, ...] = ()


def stage_payment_failed(
    partition: AccountPartition,
    event: PaymentFailedEvent,
    *,
    payload_hash: str,
    now: datetime,
    policies: DunningPolicies,
    portal_base_url: str,
) -> PaymentFailedResult:
    """Stage the event's effects on `partition` (nothing is written); the marker is staged last."""
    data = event.data
    if already_processed(partition, event.id, payload_hash):
        return PaymentFailedResult(
            event_id=event.id, account_id=data.account.id, outcome=PaymentFailedOutcome.DUPLICATE
        )
    if data.account.dunning_policy is not None:
        policies.require(data.account.dunning_policy, field="data.account.dunningPolicy")
    known = partition.account
    if known is not None and known.currency != data.account.currency:
        raise AccountCurrencyChangedError(
            f"account {data.account.id} is billed in {known.currency}, the event says {data.account.currency}"
        )
    disagreeing = snapshot_disagreement(known, data.account) if known is not None else ()
    closed = _closed_invoice_ids(partition, data)
    new_marker = ProcessedEvent(
        event_id=event.id, event_type=PAYMENT_FAILED, payload_hash=payload_hash, processed_at=now
    )
    if len(closed) == len(data.charges):
        if known is None:
            partition.set_account(data.account.to_account(event.snapshot_change(now)))
        partition.record_processed(new_marker)
        return PaymentFailedResult(
            event_id=event.id,
            account_id=data.account.id,
            outcome=PaymentFailedOutcome.LATE,
            already_settled_invoice_ids=tuple(sorted(closed)),
            disagreeing_fields=disagreeing,
        )
    partition.set_account(_account_after(known, event, now))
    method = _failed_method(partition.get(PaymentMethod, data.payment_method.id), data, now)
    partition.put(method)
    partition.put(*_subscriptions_on_method(partition, data))
    partition.put(*_new_charges(partition, data, closed))
    moved = _move_past_due(partition, method.id, now)
    policy = policies.for_account(partition.account)
    partition.put(_alert(partition, method.id, now, policy))
    notification = _notification(partition, event, method, now=now, policy=policy, portal_base_url=portal_base_url)
    if partition.get(Notification, notification.id) is None:
        partition.put(notification)
    partition.record_processed(new_marker)
    return PaymentFailedResult(
        event_id=event.id,
        account_id=data.account.id,
        outcome=PaymentFailedOutcome.APPLIED,
        past_due_subscription_ids=tuple(moved),
        already_settled_invoice_ids=tuple(sorted(closed)),
        notification_id=notification.id,
        disagreeing_fields=disagreeing,
    )


def snapshot_disagreement(account: Account, snapshot: AccountSnapshot) -> tuple[AccountField, ...]:
    """The fields a snapshot names differently from the stored account: reported, never applied (only the
    snapshot that creates an account sets them; account_update.py changes them). An absent policy names none."""
    fields = []
    if snapshot.admin_principal_id != account.admin_principal_id:
        fields.append(AccountField.ADMIN_PRINCIPAL_ID)
    if snapshot.notification_email != account.notification_email:
        fields.append(AccountField.NOTIFICATION_EMAIL)
    if snapshot.dunning_policy is not None and snapshot.dunning_policy != account.dunning_policy:
        fields.append(AccountField.DUNNING_POLICY)
    return tuple(fields)


def _account_after(known: Account | None, event: PaymentFailedEvent, now: datetime) -> Account:
    """A new account from the snapshot; a known one keeps its admin and address and takes only the locale."""
    snapshot = event.data.account
    if known is None:
        return snapshot.to_account(event.snapshot_change(now))
    return known.model_copy(update={"locale": snapshot.locale})


def event_payload_hash(event: BaseModel) -> str:
    """A hash of what the event means (unknown fields excluded), to tell a repeat from a reused id."""
    canonical = json.dumps(event.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def derived_id(prefix: str, cause: str) -> str:
    """A row id derived from its cause, so the same cause always names the same row."""
    candidate = f"{prefix}:{cause}"
    if len(candidate) <= _MAX_ID_LENGTH:
        return candidate
    return f"{prefix}:{hashlib.sha256(cause.encode()).hexdigest()[:40]}"


def alert_id(payment_method_id: str) -> str:
    return derived_id("payment-failed", payment_method_id)


def notification_id(event_id: str) -> str:
    return derived_id("payment-failed", event_id)


def _closed_invoice_ids(partition: AccountPartition, data: PaymentFailedData) -> set[str]:
    """Invoices of the event that must not be re-opened: already paid, or of a subscription already deleted."""
    closed: set[str] = set()
    for unpaid in data.charges:
        known = partition.get(Charge, unpaid.invoice_id)
        subscription = partition.get(Subscription, unpaid.subscription_id)
        if (known is not None and known.status is ChargeStatus.PAID) or (
            subscription is not None and subscription.state is SubscriptionState.DELETED
        ):
            closed.add(unpaid.invoice_id)
    return closed


def _failed_method(known: PaymentMethod | None, data: PaymentFailedData, now: datetime) -> PaymentMethod:
    hints = data.payment_method
    # A later event without a token leaves the one on file: it still names the same card at the gateway.
    method = (
        known.model_copy(
            update={
                "kind": hints.kind,
                "brand": hints.brand,
                "last4": hints.last4,
                "gateway_token": hints.gateway_token or known.gateway_token,
            }
        )
        if known is not None
        else hints.to_payment_method()
    )
    retry = {"auto_retry": hints.gateway_token is not None}
    if method.status is PaymentMethodStatus.FAILED:
        # Already failing: keep when it first failed, record the latest reason.
        return method.model_copy(update={"failed_reason": data.reason, **retry})
    return method.mark_failed(data.reason, now).model_copy(update=retry)


def _subscriptions_on_method(partition: AccountPartition, data: PaymentFailedData) -> list[Subscription]:
    """The listed subscriptions (and any charged one the event forgot to list); known ones keep their state."""
    method_id = data.payment_method.id
    staged: dict[str, Subscription] = {}
    for listed in data.subscriptions:
        known = partition.get(Subscription, listed.id)
        if known is None:
            staged[listed.id] = Subscription(
                id=listed.id, name=listed.name, service=listed.service, payment_method_id=method_id
            )
        elif known.state is not SubscriptionState.DELETED:
            staged[listed.id] = known.model_copy(update={"name": listed.name, "service": listed.service})
    for unpaid in data.charges:
        if unpaid.subscription_id not in staged and partition.get(Subscription, unpaid.subscription_id) is None:
            staged[unpaid.subscription_id] = Subscription(
                id=unpaid.subscription_id,
                name=unpaid.subscription_id,
                service=unpaid.service,
                payment_method_id=method_id,
            )
    return list(staged.values())


def _new_charges(partition: AccountPartition, data: PaymentFailedData, closed: set[str]) -> list[Charge]:
    """Charges not seen before; a known outstanding one stays as it is, a closed one is not re-opened."""
    return [
        unpaid.to_charge(data.payment_method.id)
        for unpaid in data.charges
        if unpaid.invoice_id not in closed and partition.get(Charge, unpaid.invoice_id) is None
    ]


def _outstanding_on(partition: AccountPartition, payment_method_id: str) -> list[Charge]:
    return sorted(
        (c for c in partition.charges if c.is_outstanding and c.payment_method_id == payment_method_id),
        key=lambda c: (c.due_date, c.invoice_id),
    )


def _owing_subscriptions(partition: AccountPartition, payment_method_id: str) -> list[Subscription]:
    owing = {charge.subscription_id for charge in _outstanding_on(partition, payment_method_id)}
    return sorted(
        (s for s in partition.subscriptions if s.id in owing and s.state is not SubscriptionState.DELETED),
        key=lambda s: s.id,
    )


def _move_past_due(partition: AccountPartition, payment_method_id: str, now: datetime) -> list[str]:
    moved: list[str] = []
    for subscription in _owing_subscriptions(partition, payment_method_id):
        if subscription.state in _MOVES_TO_PAST_DUE:
            partition.put(subscription.transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, now))
            moved.append(subscription.id)
    return moved


def _alert(partition: AccountPartition, payment_method_id: str, now: datetime, policy: RetentionPolicy) -> Alert:
    """The one open payment-failed alert of this method: updated while open, re-opened after it was resolved."""
    owing = _owing_subscriptions(partition, payment_method_id)
    cancellations = [at for s in owing if (at := cancellation_date(s, policy)) is not None]
    known = partition.get(Alert, alert_id(payment_method_id))
    return Alert(
        id=alert_id(payment_method_id),
        kind=AlertKind.PAYMENT_FAILED,
        payment_method_id=payment_method_id,
        subscription_ids=tuple(s.id for s in owing),
        created_at=known.created_at if known is not None and known.is_open else now,
        effective_date=min(cancellations).date() if cancellations else None,
    )


def _notification(
    partition: AccountPartition,
    event: PaymentFailedEvent,
    method: PaymentMethod,
    *,
    now: datetime,
    policy: RetentionPolicy,
    portal_base_url: str,
) -> Notification:
    account = partition.account
    if account is None:
        raise ValueError("the account is staged before its notification")
    # The stored account's address, never the snapshot's: a snapshot must not redirect the account's email.
    return Notification(
        id=notification_id(event.id),
        template=NOTIFICATION_TEMPLATE,
        locale=account.locale,
        to_address=account.notification_email,
        context=email_context(partition, event.data, method, policy, portal_base_url, now=now),
        created_at=now,
        next_attempt_at=now,
    )


def email_context(
    partition: AccountPartition,
    data: PaymentFailedData,
    method: PaymentMethod,
    policy: RetentionPolicy,
    portal_base_url: str,
    *,
    now: datetime,
) -> dict[str, JsonValue]:
    """Everything the payment_failed templates show; plain JSON values, dates as ISO 8601, amounts as decimals.
    Every date comes from `account_subscription_dates`, as the overview's and the portal's do."""
    account_id = data.account.id
    currency = data.account.currency
    outstanding = _outstanding_on(partition, method.id)
    owing = _owing_subscriptions(partition, method.id)
    names = {s.id: s.name for s in partition.subscriptions}
    past_due: list[JsonValue] = []
    ends: list[tuple[date, date]] = []  # (cancellation, deletion) of those still to be cancelled
    deletions: list[date] = []
    retries: list[date] = []
    for subscription in owing:
        dates = account_subscription_dates(partition, subscription, policy, now)
        retry_day = _utc_day(dates.next_retry)
        retries += [retry_day] if retry_day else []
        cancel_at, delete_at = _utc_day(dates.cancellation), _utc_day(dates.deletion)
        ends += [(cancel_at, delete_at)] if cancel_at and delete_at else []
        deletions += [delete_at] if delete_at else []
        past_due.append(
            {
                "id": subscription.id,
                "name": subscription.name,
                "service": subscription.service,
                "state": subscription.state.value,
                "outstanding": total(
                    [c.amount for c in outstanding if c.subscription_id == subscription.id], currency
                ).amount,
                "cancellation_date": _iso(cancel_at),
                "deletion_date": _iso(delete_at),
                "settle_url": settle_url(portal_base_url, account_id, subscription.id),
            }
        )
    owing_ids = {s.id for s in owing}
    sharing: list[JsonValue] = [
        {"id": s.id, "name": s.name, "service": s.service}
        for s in sorted(partition.subscriptions, key=lambda s: s.id)
        if s.payment_method_id == method.id and s.id not in owing_ids and s.state is not SubscriptionState.DELETED
    ]
    charges: list[JsonValue] = [
        {
            "invoice_id": c.invoice_id,
            "subscription_id": c.subscription_id,
            "subscription_name": names.get(c.subscription_id, c.subscription_id),
            "service": c.service,
            "amount": c.amount.amount,
            "due_date": c.due_date.isoformat(),
        }
        for c in outstanding
    ]
    first_owing = owing[0].id if owing else None
    # The headline follows the first cancellation; only when every owing subscription is already cancelled does
    # it announce their own deletion date.
    first_cancellation, first_deletion = min(ends) if ends else (None, min(deletions, default=None))
    return {
        "account_id": account_id,
        "payment_method": {
            "kind": method.kind.value,
            "brand": method.brand,
            "last4": method.last4,
            "display_name": method.display_name,
        },
        "reason": data.reason.value,
        "hard_decline": data.reason.is_hard,
        "currency": currency,
        "total_outstanding": total([c.amount for c in outstanding], currency).amount,
        "charges": charges,
        "past_due_subscriptions": past_due,
        "sharing_subscriptions": sharing,
        "cancellation_date": _iso(first_cancellation),
        "deletion_date": _iso(first_deletion),
        "next_retry_date": _iso(min(retries, default=None)),
        "grace_period_days": policy.grace_period_days,
        "retention_days": policy.effective_retention_days,
        "settle_url": settle_url(portal_base_url, account_id, first_owing) if first_owing else portal_base_url,
    }


def _utc_day(moment: datetime | None) -> date | None:
    return moment.astimezone(UTC).date() if moment is not None else None


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None

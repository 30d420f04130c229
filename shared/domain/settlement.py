"""The settle-balance rule, in one place.

Azure's rule: the balance to settle is every outstanding charge on the subscription's failed payment method,
across all subscriptions and services, paid in full at once. The chosen method becomes the active method of every
subscription that used the failed one; if the chosen method has outstanding charges of its own, they are added.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import Field

from shared.domain.errors import DomainError
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Charge,
    Frozen,
    Identifier,
    PaymentMethod,
    PaymentMethodKind,
    PaymentMethodStatus,
    Subscription,
)
from shared.domain.money import Money, total


class NothingToSettleError(DomainError):
    pass


class SettlementScope(Frozen):
    """What one payment must cover: the charges (sorted), their total and the method that failed."""

    failed_payment_method_id: str
    selected_payment_method_id: str
    charges: tuple[Charge, ...]
    total: Money

    @property
    def invoice_ids(self) -> tuple[str, ...]:
        return tuple(charge.invoice_id for charge in self.charges)

    @property
    def subscription_ids(self) -> tuple[str, ...]:
        return tuple(sorted({charge.subscription_id for charge in self.charges}))


def failed_method_of(subscription: Subscription, charges: Iterable[Charge]) -> str | None:
    """The method whose unpaid charges hold this subscription past due: its active one, else the one it failed on."""
    outstanding = [c for c in charges if c.is_outstanding and c.subscription_id == subscription.id]
    methods = {c.payment_method_id for c in outstanding}
    if subscription.payment_method_id in methods:
        return subscription.payment_method_id
    return min(methods) if methods else None


def settlement_scope(
    subscription: Subscription,
    charges: Iterable[Charge],
    currency: str,
    selected_payment_method_id: str | None = None,
) -> SettlementScope:
    """The whole balance that must be paid at once to bring `subscription` back, per the rule above."""
    charges = list(charges)
    failed = failed_method_of(subscription, charges)
    if failed is None:
        raise NothingToSettleError(f"subscription {subscription.id} has no outstanding charges")
    selected = selected_payment_method_id or failed
    methods = {failed, selected}
    covered = sorted(
        (c for c in charges if c.is_outstanding and c.payment_method_id in methods),
        key=lambda c: (c.payment_method_id != failed, c.due_date, c.invoice_id),
    )
    return SettlementScope(
        failed_payment_method_id=failed,
        selected_payment_method_id=selected,
        charges=tuple(covered),
        total=total([c.amount for c in covered], currency),
    )


class SettlementStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"


class Settlement(Frozen):
    """One attempt to pay a scope; recorded as pending before the gateway is called."""

    id: Identifier
    subscription_id: Identifier
    failed_payment_method_id: Identifier
    payment_method_id: Identifier
    payment_method_kind: PaymentMethodKind
    invoice_ids: tuple[str, ...]
    total: Money
    status: SettlementStatus = SettlementStatus.PENDING
    reason: str | None = None
    reference: str | None = Field(default=None, max_length=64)
    created_at: datetime
    completed_at: datetime | None = None
    reenabled_subscription_ids: tuple[str, ...] = ()
    switched_subscription_ids: tuple[str, ...] = ()
    # Set on an automatic retry of a failed payment (shared/domain/payment_retry.py): which attempt it is.
    retry_attempt: int | None = Field(default=None, ge=1)

    def succeed(self, effects: SettlementEffects, at: datetime) -> Self:
        return self.model_copy(
            update={
                "status": SettlementStatus.SUCCEEDED,
                "completed_at": at,
                "reenabled_subscription_ids": effects.reenabled_subscription_ids,
                "switched_subscription_ids": effects.switched_subscription_ids,
            }
        )

    def decline(self, reason: str, at: datetime) -> Self:
        return self.model_copy(update={"status": SettlementStatus.DECLINED, "reason": reason, "completed_at": at})


class SettlementEffects(Frozen):
    """The rows a successful payment changes; the caller stages them all in one commit."""

    charges: tuple[Charge, ...]
    subscriptions: tuple[Subscription, ...]
    payment_methods: tuple[PaymentMethod, ...]
    reenabled_subscription_ids: tuple[str, ...]
    switched_subscription_ids: tuple[str, ...]


def apply_payment(
    settlement: Settlement,
    subscriptions: Iterable[Subscription],
    charges: Iterable[Charge],
    payment_methods: Iterable[PaymentMethod],
    *,
    at: datetime,
    reason: TransitionReason = TransitionReason.BALANCE_SETTLED,
) -> SettlementEffects:
    """Mark the settlement's charges paid, switch every subscription off the failed method, re-enable the paid."""
    charges = list(charges)
    paid_ids = set(settlement.invoice_ids)
    paid = tuple(c.mark_paid(settlement.id, at) for c in charges if c.invoice_id in paid_ids and c.is_outstanding)
    still_owing = {c.subscription_id for c in charges if c.is_outstanding and c.invoice_id not in paid_ids}
    touched = {c.subscription_id for c in charges if c.invoice_id in paid_ids}
    changed: list[Subscription] = []
    reenabled: list[str] = []
    switched: list[str] = []
    for subscription in sorted(subscriptions, key=lambda s: s.id):
        if subscription.state is SubscriptionState.DELETED:
            continue
        updated = subscription
        if subscription.payment_method_id == settlement.failed_payment_method_id:
            updated = updated.switch_payment_method(settlement.payment_method_id)
            if updated != subscription:
                switched.append(subscription.id)
        affected = subscription.id in touched or updated is not subscription
        if affected and subscription.id not in still_owing and updated.state is not SubscriptionState.ENABLED:
            updated = updated.reenable(reason, at)
            reenabled.append(subscription.id)
        if updated != subscription:
            changed.append(updated)
    methods = tuple(
        method.mark_active()
        for method in payment_methods
        if method.id == settlement.payment_method_id and method.status is not PaymentMethodStatus.ACTIVE
    )
    return SettlementEffects(
        charges=paid,
        subscriptions=tuple(changed),
        payment_methods=methods,
        reenabled_subscription_ids=tuple(reenabled),
        switched_subscription_ids=tuple(switched),
    )

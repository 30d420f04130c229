from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Charge,
    ChargeStatus,
    PaymentMethod,
    PaymentMethodKind,
    PaymentMethodStatus,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.settlement import (
    NothingToSettleError,
    Settlement,
    apply_payment,
    settlement_scope,
)

AT = datetime(2026, 11, 24, 10, tzinfo=UTC)


def sub(sub_id: str, method: str, state: SubscriptionState = SubscriptionState.PAST_DUE) -> Subscription:
    return Subscription(id=sub_id, name=sub_id, service="Azure", payment_method_id=method, state=state)


def charge(invoice: str, sub_id: str, method: str, cents: int, *, paid: bool = False) -> Charge:
    return Charge(
        invoice_id=invoice,
        subscription_id=sub_id,
        service="Azure",
        amount=Money(minor=cents, currency="EUR"),
        due_date=date(2026, 11, 20),
        payment_method_id=method,
        status=ChargeStatus.PAID if paid else ChargeStatus.OUTSTANDING,
    )


def settlement_for(scope_invoices: tuple[str, ...], failed: str, chosen: str) -> Settlement:
    return Settlement(
        id="stl-1",
        subscription_id="sub-a",
        failed_payment_method_id=failed,
        payment_method_id=chosen,
        payment_method_kind=PaymentMethodKind.CARD,
        invoice_ids=scope_invoices,
        total=Money(minor=0, currency="EUR"),
        created_at=AT,
    )


def test_the_balance_covers_every_outstanding_charge_on_the_failed_card_across_subscriptions_and_services() -> None:
    charges = [
        charge("inv-1", "sub-a", "pm-visa", 4995),
        charge("inv-2", "sub-b", "pm-visa", 1000),
        charge("inv-3", "sub-c", "pm-visa", 1, paid=True),
        charge("inv-4", "sub-d", "pm-other", 700),
    ]
    scope = settlement_scope(sub("sub-a", "pm-visa"), charges, "EUR")
    assert scope.failed_payment_method_id == "pm-visa"
    assert scope.invoice_ids == ("inv-1", "inv-2")
    assert scope.total == Money(minor=5995, currency="EUR")
    assert scope.subscription_ids == ("sub-a", "sub-b")


def test_a_chosen_method_with_debts_of_its_own_adds_them_to_the_total() -> None:
    charges = [charge("inv-1", "sub-a", "pm-visa", 4995), charge("inv-4", "sub-d", "pm-amex", 700)]
    scope = settlement_scope(sub("sub-a", "pm-visa"), charges, "EUR", selected_payment_method_id="pm-amex")
    assert scope.invoice_ids == ("inv-1", "inv-4")
    assert scope.total.minor == 5695


def test_a_subscription_with_nothing_outstanding_has_nothing_to_settle() -> None:
    with pytest.raises(NothingToSettleError):
        settlement_scope(sub("sub-a", "pm-visa"), [charge("inv-1", "sub-a", "pm-visa", 10, paid=True)], "EUR")


def test_paying_switches_every_subscription_on_the_failed_card_and_reenables_the_paid_ones() -> None:
    subscriptions = [
        sub("sub-a", "pm-visa"),
        sub("sub-b", "pm-visa", SubscriptionState.DISABLED),
        sub("sub-c", "pm-visa", SubscriptionState.ENABLED),
        sub("sub-d", "pm-other"),
        sub("sub-e", "pm-visa", SubscriptionState.DELETED),
    ]
    charges = [
        charge("inv-1", "sub-a", "pm-visa", 4995),
        charge("inv-2", "sub-b", "pm-visa", 1000),
        charge("inv-9", "sub-d", "pm-other", 10),
    ]
    methods = [PaymentMethod(id="pm-new", kind=PaymentMethodKind.CARD, status=PaymentMethodStatus.FAILED)]
    effects = apply_payment(
        settlement_for(("inv-1", "inv-2"), "pm-visa", "pm-new"),
        subscriptions,
        charges,
        methods,
        at=AT,
        reason=TransitionReason.BALANCE_SETTLED,
    )
    assert {c.invoice_id for c in effects.charges} == {"inv-1", "inv-2"}
    assert all(c.status is ChargeStatus.PAID and c.settlement_id == "stl-1" for c in effects.charges)
    assert effects.switched_subscription_ids == ("sub-a", "sub-b", "sub-c")
    assert effects.reenabled_subscription_ids == ("sub-a", "sub-b")
    changed = {s.id: s for s in effects.subscriptions}
    assert changed["sub-c"].state is SubscriptionState.ENABLED
    assert changed["sub-c"].payment_method_id == "pm-new"
    assert "sub-d" not in changed
    assert "sub-e" not in changed
    assert effects.payment_methods[0].status is PaymentMethodStatus.ACTIVE


def test_a_subscription_that_still_owes_on_another_method_stays_past_due() -> None:
    subscriptions = [sub("sub-a", "pm-visa")]
    charges = [charge("inv-1", "sub-a", "pm-visa", 4995), charge("inv-2", "sub-a", "pm-old", 100)]
    effects = apply_payment(settlement_for(("inv-1",), "pm-visa", "pm-new"), subscriptions, charges, [], at=AT)
    assert effects.reenabled_subscription_ids == ()
    assert effects.subscriptions[0].state is SubscriptionState.PAST_DUE
    assert effects.subscriptions[0].payment_method_id == "pm-new"

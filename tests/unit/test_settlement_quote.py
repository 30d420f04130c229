"""Quote math on in-memory partitions: what one payment must cover, how it is shown and when its version moves."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Charge, ChargeStatus, PaymentMethodKind, Subscription
from shared.domain.money import Money
from shared.domain.partition import AccountPartition
from shared.domain.retention_policy import RetentionPolicy
from shared.domain.settle_balance import normalized_reference, payment_reference, settlement_id_for
from shared.domain.settlement import NothingToSettleError, Settlement, settlement_scope
from shared.services.views import overview_of, quote_of
from tests.support.settlement_data import MASTERCARD, NOW, VISA, AccountData, charge, shared_card_account


def partition_of(data: AccountData) -> AccountPartition:
    partition = AccountPartition(account_id=data.id)
    partition.set_account(data.account)
    partition.put(*data.rows)
    return partition


def quote_for(partition: AccountPartition, subscription_id: str, selected: str | None = None) -> dict[str, Any]:
    subscription = partition.get(Subscription, subscription_id)
    assert subscription is not None
    scope = settlement_scope(subscription, partition.charges, "EUR", selected)
    return quote_of(partition, subscription_id, scope).to_wire()


def test_the_quote_covers_every_charge_on_the_shared_failed_card_across_subscriptions_and_services() -> None:
    quote = quote_for(partition_of(shared_card_account()), "sub-a")

    assert quote["total"] == {"amount": "69.95", "currency": "EUR"}
    assert quote["failedPaymentMethodId"] == VISA
    assert [
        (line["subscriptionId"], line["service"], line["invoiceId"], line["amount"]) for line in quote["lines"]
    ] == [
        ("sub-b", "Microsoft 365", "inv-2", "20.00"),
        ("sub-a", "Azure", "inv-1", "49.95"),
    ]
    assert {line["paymentMethodId"] for line in quote["lines"]} == {VISA}


def test_any_subscription_on_the_failed_card_gets_the_same_total() -> None:
    partition = partition_of(shared_card_account())

    assert quote_for(partition, "sub-b")["total"] == quote_for(partition, "sub-a")["total"]


def test_a_selected_method_with_its_own_debt_adds_that_debt() -> None:
    data = shared_card_account()
    data.rows.append(charge("inv-9", "sub-d", "15.05", method=MASTERCARD))

    quote = quote_for(partition_of(data), "sub-a", MASTERCARD)

    assert quote["total"] == {"amount": "85.00", "currency": "EUR"}
    assert quote["selectedPaymentMethodId"] == MASTERCARD
    assert [line["invoiceId"] for line in quote["lines"]] == ["inv-2", "inv-1", "inv-9"]


def test_a_selected_method_without_debt_adds_nothing() -> None:
    assert quote_for(partition_of(shared_card_account()), "sub-a", MASTERCARD)["total"]["amount"] == "69.95"


def test_charges_already_paid_or_on_unrelated_methods_are_not_quoted() -> None:
    data = shared_card_account()
    data.rows.append(charge("inv-old", "sub-a", "99.00", status=ChargeStatus.PAID))
    data.rows.append(charge("inv-other", "sub-d", "10.00", method=MASTERCARD))

    quote = quote_for(partition_of(data), "sub-a")

    assert quote["total"]["amount"] == "69.95"


def test_a_subscription_without_debt_has_nothing_to_settle() -> None:
    partition = partition_of(shared_card_account())
    subscription = partition.get(Subscription, "sub-c")
    assert subscription is not None

    with pytest.raises(NothingToSettleError):
        settlement_scope(subscription, partition.charges, "EUR")


def test_amounts_add_up_exactly_in_minor_units() -> None:
    data = shared_card_account()
    data.rows = [row for row in data.rows if not isinstance(row, Charge)]
    data.rows += [charge(f"inv-{n}", "sub-a", "0.10", due_date=date(2026, 11, n)) for n in range(1, 11)]

    assert quote_for(partition_of(data), "sub-a")["total"]["amount"] == "1.00"


def test_the_quote_version_moves_when_a_quoted_charge_changes_and_stays_for_unrelated_rows() -> None:
    data = shared_card_account()
    before = quote_for(partition_of(data), "sub-a")["quoteVersion"]

    unrelated = partition_of(data)
    unrelated.put(Subscription(id="sub-z", name="New", service="Azure", payment_method_id=MASTERCARD))
    added = partition_of(data)
    added.put(charge("inv-3", "sub-c", "5.00"))
    rewritten = partition_of(data)
    rewritten.etags[(Charge, "inv-1")] = "W/\"datetime'2026-11-30T09%3A00%3A00Z'\""

    assert quote_for(unrelated, "sub-a")["quoteVersion"] == before
    assert quote_for(added, "sub-a")["quoteVersion"] != before
    assert quote_for(rewritten, "sub-a")["quoteVersion"] != before
    assert quote_for(partition_of(data), "sub-a", MASTERCARD)["quoteVersion"] != before


def test_the_quote_names_a_pending_settlement_of_the_same_charges() -> None:
    partition = partition_of(shared_card_account())
    partition.put(
        Settlement(
            id="stl-1",
            subscription_id="sub-a",
            failed_payment_method_id=VISA,
            payment_method_id=VISA,
            payment_method_kind=PaymentMethodKind.CARD,
            invoice_ids=("inv-1",),
            total=Money.parse("49.95", "EUR"),
            created_at=NOW,
        )
    )

    assert quote_for(partition, "sub-b")["pendingSettlementId"] == "stl-1"


def test_the_overview_says_who_can_settle_and_what_each_subscription_owes() -> None:
    overview = overview_of(partition_of(shared_card_account()), RetentionPolicy(), NOW).to_wire()

    rows = {s["id"]: (s["state"], s["outstanding"]["amount"], s["canSettle"]) for s in overview["subscriptions"]}
    assert rows == {
        "sub-a": ("PastDue", "49.95", True),
        "sub-b": ("PastDue", "20.00", True),
        "sub-c": ("Enabled", "0.00", False),
        "sub-d": ("Enabled", "0.00", False),
    }
    assert [alert["id"] for alert in overview["alerts"]] == ["alert-pf-1"]


def test_a_deleted_subscription_cannot_settle_even_with_debt() -> None:
    data = shared_card_account()
    data.rows = [
        row.model_copy(update={"state": SubscriptionState.DELETED}) if getattr(row, "id", None) == "sub-a" else row
        for row in data.rows
    ]

    subscriptions = {
        s["id"]: s for s in overview_of(partition_of(data), RetentionPolicy(), NOW).to_wire()["subscriptions"]
    }

    assert subscriptions["sub-a"]["canSettle"] is False


def test_settlement_ids_are_stable_per_account_and_key() -> None:
    assert settlement_id_for("acc-1", "key-1") == settlement_id_for("acc-1", "key-1")
    assert settlement_id_for("acc-1", "key-1") != settlement_id_for("acc-2", "key-1")
    assert settlement_id_for("acc-1", "key-1") != settlement_id_for("acc-1", "key-2")


def test_a_payment_reference_survives_what_banks_do_to_it() -> None:
    reference = payment_reference("stl-123")

    assert reference.startswith("PD-")
    assert len(reference) == 17
    assert normalized_reference(reference.lower().replace("-", " ")) == normalized_reference(reference)
    assert normalized_reference(payment_reference("stl-124")) != normalized_reference(reference)

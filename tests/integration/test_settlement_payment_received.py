"""The invoice path: remittance details and a pending settlement, then `payment.received` applies the payment."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import ChargeStatus, PaymentMethod, PaymentMethodKind, ProcessedEvent
from shared.domain.money import Money
from shared.domain.payment_events import PaymentReceivedEvent
from shared.domain.settle_balance import NEW_INVOICE_METHOD_ID, PaymentChoice
from shared.domain.settlement import Settlement, SettlementStatus
from shared.services.payment_received import (
    AmountMismatchError,
    PaymentReceivedRejectedError,
    PaymentReceivedResult,
    ReferenceNotFoundError,
    SettlementClosedError,
    UnknownAccountError,
)
from shared.services.unit_of_work import with_fresh_partition
from shared.services.views import SettlementOutcome
from tests.support.settlement_data import (
    NOW,
    AccountData,
    charge,
    lifecycle_events,
    sent_emails,
    settle_command,
    settlement_deps,
    shared_card_account,
)

pytestmark = pytest.mark.azurite


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path) -> Dependencies:
    return settlement_deps(azurite.connection_string, tmp_path / "outbox", FixedClock(NOW))


@pytest.fixture
def account(deps: Dependencies) -> AccountData:
    return shared_card_account().write(deps.accounts)


def by_invoice(deps: Dependencies, account: AccountData, key: str = "key-inv") -> SettlementOutcome:
    return deps.settle_balance(settle_command(account.id, key, payment=PaymentChoice(invoice=True)))


def received(account_id: str, reference: str, amount: str = "69.95", currency: str = "EUR", **extra: Any) -> Any:
    return PaymentReceivedEvent.model_validate(
        {
            "specversion": "1.0",
            "id": extra.pop("event_id", "evt-0002"),
            "type": "payment.received",
            "source": "/bank-reconciliation",
            "time": "2026-11-30T09:00:00Z",
            "data": {"accountId": account_id, "reference": reference, "amount": amount, "currency": currency},
        }
    )


def test_choosing_invoice_returns_remittance_details_and_leaves_the_subscriptions_past_due(
    deps: Dependencies, account: AccountData
) -> None:
    outcome = by_invoice(deps, account)

    assert outcome.status is SettlementStatus.PENDING
    assert outcome.charged.amount == "0.00"
    assert outcome.remittance is not None
    settings = deps.settings
    assert (outcome.remittance.beneficiary, outcome.remittance.iban, outcome.remittance.bic) == (
        settings.remittance_beneficiary,
        settings.remittance_iban,
        settings.remittance_bic,
    )
    assert (outcome.remittance.amount, outcome.remittance.currency) == ("69.95", "EUR")
    assert outcome.remittance.reference.startswith("PD-")
    partition = deps.accounts.load(account.id)
    assert {s.id: s.state for s in partition.subscriptions}["sub-a"] is SubscriptionState.PAST_DUE
    assert all(c.status is ChargeStatus.OUTSTANDING for c in partition.charges)


def test_asking_again_with_the_same_key_returns_the_same_reference(deps: Dependencies, account: AccountData) -> None:
    first = by_invoice(deps, account)
    again = by_invoice(deps, account)

    assert again.replayed is True
    assert again.remittance == first.remittance


def test_payment_received_with_the_reference_applies_the_same_effects_as_a_card_payment(
    deps: Dependencies, account: AccountData
) -> None:
    outcome = by_invoice(deps, account)
    assert outcome.remittance is not None
    mangled = outcome.remittance.reference.lower().replace("-", " ")

    result = deps.apply_payment_received(received(account.id, mangled))

    assert result.duplicate is False
    assert result.settlement_id == outcome.settlement_id
    assert result.reenabled_subscription_ids == ("sub-a", "sub-b")
    assert result.switched_subscription_ids == ("sub-a", "sub-b", "sub-c")
    partition = deps.accounts.load(account.id)
    assert {s.id: (s.state, s.payment_method_id) for s in partition.subscriptions if s.id != "sub-d"} == {
        "sub-a": (SubscriptionState.ENABLED, NEW_INVOICE_METHOD_ID),
        "sub-b": (SubscriptionState.ENABLED, NEW_INVOICE_METHOD_ID),
        "sub-c": (SubscriptionState.ENABLED, NEW_INVOICE_METHOD_ID),
    }
    invoice = partition.get(PaymentMethod, NEW_INVOICE_METHOD_ID)
    assert invoice is not None
    assert invoice.kind is PaymentMethodKind.INVOICE
    assert all(c.status is ChargeStatus.PAID for c in partition.charges)
    assert all(not a.is_open for a in partition.alerts)
    assert partition.get(ProcessedEvent, "evt-0002") is not None
    settlement = partition.get(Settlement, outcome.settlement_id)
    assert settlement is not None
    assert settlement.status is SettlementStatus.SUCCEEDED
    assert len(sent_emails(deps)) == 1
    assert "bank transfer" in sent_emails(deps)[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    types = sorted(e["type"] for e in lifecycle_events(deps))
    assert types == ["payment_method.replaced", "subscription.enabled", "subscription.enabled"]
    assert {e["data"]["reason"] for e in lifecycle_events(deps) if e["type"] == "subscription.enabled"} == {
        "payment_received"
    }


def test_the_same_event_twice_changes_state_once_and_sends_one_email(deps: Dependencies, account: AccountData) -> None:
    reference = by_invoice(deps, account).remittance
    assert reference is not None
    deps.apply_payment_received(received(account.id, reference.reference))
    version = deps.accounts.load(account.id).version

    again = deps.apply_payment_received(received(account.id, reference.reference))

    assert again.duplicate is True
    assert deps.accounts.load(account.id).version == version
    assert len(sent_emails(deps)) == 1


def test_two_workers_processing_the_same_event_apply_it_once(deps: Dependencies, account: AccountData) -> None:
    remittance = by_invoice(deps, account).remittance
    assert remittance is not None
    start = threading.Barrier(2)

    def run(_: int) -> PaymentReceivedResult:
        start.wait()
        return deps.apply_payment_received(received(account.id, remittance.reference))

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, range(2)))

    assert sorted(r.duplicate for r in results) == [False, True]
    assert len(sent_emails(deps)) == 1


def test_an_unknown_account_is_rejected(deps: Dependencies) -> None:
    with pytest.raises(UnknownAccountError):
        deps.apply_payment_received(received("acc-nobody", "PD-AAAA-BBBB-CCCC"))


def test_an_unknown_reference_is_rejected(deps: Dependencies, account: AccountData) -> None:
    by_invoice(deps, account)

    with pytest.raises(ReferenceNotFoundError):
        deps.apply_payment_received(received(account.id, "PD-AAAA-BBBB-CCCC"))


@pytest.mark.parametrize(("amount", "currency"), [("69.94", "EUR"), ("70.00", "EUR"), ("69.95", "USD")])
def test_a_different_amount_or_currency_is_rejected_and_changes_nothing(
    deps: Dependencies, account: AccountData, amount: str, currency: str
) -> None:
    remittance = by_invoice(deps, account).remittance
    assert remittance is not None
    version = deps.accounts.load(account.id).version

    with pytest.raises(AmountMismatchError):
        deps.apply_payment_received(received(account.id, remittance.reference, amount, currency))

    assert deps.accounts.load(account.id).version == version


def test_a_second_payment_for_a_settled_reference_is_rejected_for_an_operator(
    deps: Dependencies, account: AccountData
) -> None:
    remittance = by_invoice(deps, account).remittance
    assert remittance is not None
    deps.apply_payment_received(received(account.id, remittance.reference))

    with pytest.raises(SettlementClosedError):
        deps.apply_payment_received(received(account.id, remittance.reference, event_id="evt-0003"))


def test_a_card_payment_supersedes_a_pending_invoice_and_its_reference(
    deps: Dependencies, account: AccountData
) -> None:
    remittance = by_invoice(deps, account).remittance
    assert remittance is not None

    card = deps.settle_balance(settle_command(account.id, "key-card"))

    assert card.status is SettlementStatus.SUCCEEDED
    invoice = [s for s in deps.accounts.load(account.id).all(Settlement) if s.payment_method_kind == "invoice"]
    assert [(s.status, s.reason) for s in invoice] == [(SettlementStatus.DECLINED, "superseded")]
    with pytest.raises(SettlementClosedError):
        deps.apply_payment_received(received(account.id, remittance.reference))


def test_a_second_invoice_request_for_the_same_balance_answers_the_pending_settlement_and_its_reference(
    deps: Dependencies, account: AccountData
) -> None:
    first = by_invoice(deps, account, "key-1")
    second = by_invoice(deps, account, "key-2")

    assert second.status is SettlementStatus.PENDING
    assert second.settlement_id == first.settlement_id
    assert second.remittance == first.remittance
    invoices = [s for s in deps.accounts.load(account.id).all(Settlement) if s.payment_method_kind == "invoice"]
    assert [(s.id, s.status) for s in invoices] == [(first.settlement_id, SettlementStatus.PENDING)]
    assert first.remittance is not None
    assert deps.apply_payment_received(received(account.id, first.remittance.reference)).duplicate is False


def test_a_new_invoice_request_after_the_balance_changed_supersedes_the_older_reference(
    deps: Dependencies, account: AccountData
) -> None:
    older = by_invoice(deps, account, "key-1").remittance
    with_fresh_partition(deps.accounts, account.id, lambda p: p.put(charge("inv-3", "sub-a", "10.00")))
    newer = deps.settle_balance(
        settle_command(
            account.id, "key-2", payment=PaymentChoice(invoice=True), expected_total=Money.parse("79.95", "EUR")
        )
    ).remittance
    assert older is not None
    assert newer is not None
    assert newer.reference != older.reference

    with pytest.raises(SettlementClosedError):
        deps.apply_payment_received(received(account.id, older.reference))
    assert deps.apply_payment_received(received(account.id, newer.reference, amount="79.95")).duplicate is False


def test_every_rejection_shares_one_base_class_for_the_queue_handler() -> None:
    for error in (UnknownAccountError, ReferenceNotFoundError, AmountMismatchError, SettlementClosedError):
        assert issubclass(error, PaymentReceivedRejectedError)

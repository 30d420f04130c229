"""`payment.received` on the in-memory fakes: the invoice path settles with the same effects as a card payment."""

from __future__ import annotations

import copy
import dataclasses

import pytest

from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import ChargeStatus, PaymentMethod, PaymentMethodKind
from shared.domain.payment_events import PaymentReceivedEvent
from shared.domain.settle_balance import NEW_INVOICE_METHOD_ID, PaymentChoice
from shared.domain.settlement import Settlement, SettlementStatus
from shared.services.payment_received import (
    AmountMismatchError,
    PaymentReceivedResult,
    ReferenceNotFoundError,
    SettlementClosedError,
    UnknownAccountError,
)
from shared.settings import Settings
from tests.fakes import RacingAccounts, build_in_memory
from tests.support.payment_events import ISSUE_PAYMENT_RECEIVED_EXAMPLE
from tests.support.settlement_data import NOW, AccountData, settle_command, shared_card_account


@pytest.fixture
def deps() -> Dependencies:
    return build_in_memory(Settings(), FixedClock(NOW))


@pytest.fixture
def account(deps: Dependencies) -> AccountData:
    return shared_card_account().write(deps.accounts)  # type: ignore[arg-type]


@pytest.fixture
def reference(deps: Dependencies, account: AccountData) -> str:
    outcome = deps.settle_balance(settle_command(account.id, "key-inv", payment=PaymentChoice(invoice=True)))
    assert outcome.remittance is not None
    return outcome.remittance.reference


def received(
    account_id: str, reference: str, amount: str = "69.95", currency: str = "EUR", event_id: str = "evt-0002"
) -> PaymentReceivedEvent:
    document = copy.deepcopy(ISSUE_PAYMENT_RECEIVED_EXAMPLE)
    document["id"] = event_id
    document["data"] = {"accountId": account_id, "reference": reference, "amount": amount, "currency": currency}
    return PaymentReceivedEvent.model_validate(document)


def test_money_with_the_reference_settles_the_pending_invoice_like_a_card_payment(
    deps: Dependencies, account: AccountData, reference: str
) -> None:
    mangled = reference.lower().replace("-", " ")  # as a bank statement may quote it

    result = deps.apply_payment_received(received(account.id, mangled))

    assert result.duplicate is False
    assert result.reenabled_subscription_ids == ("sub-a", "sub-b")
    assert result.switched_subscription_ids == ("sub-a", "sub-b", "sub-c")
    partition = deps.accounts.load(account.id)
    assert {s.id: s.state for s in partition.subscriptions if s.id != "sub-d"} == dict.fromkeys(
        ("sub-a", "sub-b", "sub-c"), SubscriptionState.ENABLED
    )
    invoice = partition.get(PaymentMethod, NEW_INVOICE_METHOD_ID)
    assert invoice is not None
    assert invoice.kind is PaymentMethodKind.INVOICE
    assert all(c.status is ChargeStatus.PAID for c in partition.charges)
    assert partition.has_processed("evt-0002") is not None
    (receipt,) = deps.email.sent  # type: ignore[attr-defined]
    assert "bank transfer" in receipt.plain_text
    events = deps.events.cloudevents  # type: ignore[attr-defined]
    assert sorted(e["type"] for e in events) == [
        "payment_method.replaced",
        "subscription.enabled",
        "subscription.enabled",
    ]
    assert {e["data"]["reason"] for e in events if e["type"] == "subscription.enabled"} == {"payment_received"}


def test_the_same_event_twice_changes_state_once_and_sends_one_email(
    deps: Dependencies, account: AccountData, reference: str
) -> None:
    deps.apply_payment_received(received(account.id, reference))
    version = deps.accounts.load(account.id).version

    again = deps.apply_payment_received(received(account.id, reference))

    assert again.duplicate is True
    assert deps.accounts.load(account.id).version == version
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_when_another_worker_applies_the_same_event_first_the_loser_rereads_and_applies_nothing(
    deps: Dependencies, account: AccountData, reference: str
) -> None:
    event = received(account.id, reference)
    winner: list[PaymentReceivedResult] = []
    racing = RacingAccounts(deps.accounts, lambda: winner.append(deps.apply_payment_received(event)))

    loser = dataclasses.replace(deps, accounts=racing).apply_payment_received(event)

    assert racing.races == 1
    assert [w.duplicate for w in winner] == [False]
    assert loser.duplicate is True  # decided again on the fresh read
    assert loser.reenabled_subscription_ids == ()
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_an_unknown_account_or_reference_is_rejected(deps: Dependencies, account: AccountData, reference: str) -> None:
    with pytest.raises(UnknownAccountError):
        deps.apply_payment_received(received("acc-nobody", reference))
    with pytest.raises(ReferenceNotFoundError):
        deps.apply_payment_received(received(account.id, "PD-AAAA-BBBB-CCCC"))


@pytest.mark.parametrize(("amount", "currency"), [("69.94", "EUR"), ("70.00", "EUR"), ("69.95", "USD")])
def test_a_different_amount_or_currency_is_rejected_and_changes_nothing(
    deps: Dependencies, account: AccountData, reference: str, amount: str, currency: str
) -> None:
    version = deps.accounts.load(account.id).version

    with pytest.raises(AmountMismatchError):
        deps.apply_payment_received(received(account.id, reference, amount, currency))

    assert deps.accounts.load(account.id).version == version


def test_a_second_payment_for_a_settled_reference_is_rejected_for_an_operator(
    deps: Dependencies, account: AccountData, reference: str
) -> None:
    deps.apply_payment_received(received(account.id, reference))

    with pytest.raises(SettlementClosedError):
        deps.apply_payment_received(received(account.id, reference, event_id="evt-0003"))


def test_a_card_payment_supersedes_the_pending_invoice_and_its_reference(
    deps: Dependencies, account: AccountData, reference: str
) -> None:
    assert deps.settle_balance(settle_command(account.id, "key-card")).status is SettlementStatus.SUCCEEDED

    invoices = [s for s in deps.accounts.load(account.id).all(Settlement) if s.payment_method_kind == "invoice"]
    assert [(s.status, s.reason) for s in invoices] == [(SettlementStatus.DECLINED, "superseded")]
    with pytest.raises(SettlementClosedError):
        deps.apply_payment_received(received(account.id, reference))

"""Settle balance and the portal's reads on the in-memory fakes: quotes, payments, repeats, races and crashes."""

from __future__ import annotations

import dataclasses

import pytest

from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Alert, AlertKind, ChargeStatus, PaymentMethodStatus
from shared.domain.money import Money
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.settle_balance import (
    PENDING_CHARGE_EXPIRY,
    AccountNotFoundError,
    IdempotencyKeyReusedError,
    PaymentChoice,
    PrincipalNotAllowedError,
    SettlementInProgressError,
    new_card_id,
    settlement_id_for,
)
from shared.domain.settlement import Settlement, SettlementStatus
from shared.services.account_views import InvalidNotificationEmailError
from shared.services.settle_balance import QuoteChangedError
from shared.services.unit_of_work import with_fresh_partition
from shared.settings import Settings
from tests.fakes import Fault, FaultyPort, RacingAccounts, build_in_memory
from tests.support.settlement_data import (
    ADMIN,
    MASTERCARD,
    NOW,
    VISA,
    AccountData,
    charge,
    settle_command,
    shared_card_account,
)


class SimulatedCrash(BaseException):
    """The process dies: not an Exception, so nothing on the way catches it."""


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(clock: FixedClock) -> Dependencies:
    return build_in_memory(Settings(), clock)


@pytest.fixture
def account(deps: Dependencies) -> AccountData:
    return shared_card_account().write(deps.accounts)  # type: ignore[arg-type]


def states(deps: Dependencies, account: AccountData) -> dict[str, tuple[SubscriptionState, str]]:
    return {s.id: (s.state, s.payment_method_id) for s in deps.accounts.load(account.id).subscriptions}


def charged_keys(deps: Dependencies) -> list[str]:
    return [result.idempotency_key for result in deps.gateway.ledger()]  # type: ignore[attr-defined]


# --- the portal's reads -----------------------------------------------------------------------------------------


def test_the_overview_shows_what_each_subscription_owes_the_open_alert_and_the_methods(
    deps: Dependencies, account: AccountData
) -> None:
    overview = deps.account_overview(account.id, ADMIN)

    assert [(s.id, s.state, s.outstanding.amount, s.can_settle) for s in overview.subscriptions] == [
        ("sub-a", SubscriptionState.PAST_DUE, "49.95", True),
        ("sub-b", SubscriptionState.PAST_DUE, "20.00", True),
        ("sub-c", SubscriptionState.ENABLED, "0.00", False),
        ("sub-d", SubscriptionState.ENABLED, "0.00", False),
    ]
    assert [a.id for a in overview.alerts] == ["alert-pf-1"]
    assert [(m.id, m.status) for m in overview.payment_methods] == [
        (MASTERCARD, PaymentMethodStatus.ACTIVE),
        (VISA, PaymentMethodStatus.FAILED),
    ]


def test_the_quote_covers_every_debt_on_the_failed_card(deps: Dependencies, account: AccountData) -> None:
    quote = deps.quote_settlement(account.id, ADMIN, "sub-a")

    assert (quote.total.amount, quote.total.currency) == ("69.95", "EUR")
    # sub-b's charge is on the same failed card, so it is part of the quote; the oldest due date comes first
    assert [(line.invoice_id, line.amount) for line in quote.lines] == [("inv-2", "20.00"), ("inv-1", "49.95")]
    assert quote.failed_payment_method_id == VISA


def test_only_the_accounts_admin_may_read_or_pay_and_an_unknown_account_is_not_found(
    deps: Dependencies, account: AccountData
) -> None:
    with pytest.raises(PrincipalNotAllowedError):
        deps.account_overview(account.id, "someone-else")
    with pytest.raises(PrincipalNotAllowedError):
        deps.settle_balance(settle_command(account.id, principal_id="someone-else"))
    with pytest.raises(AccountNotFoundError):
        deps.quote_settlement("acc-unknown", ADMIN, "sub-a")
    assert charged_keys(deps) == []


def test_changing_the_notification_address_redirects_only_emails_not_yet_sent(deps: Dependencies) -> None:
    data = shared_card_account()
    sent = Notification(
        id="ntf-1",
        template="payment_failed",
        locale="en-US",
        to_address="billing@contoso.example",
        context={},
        created_at=NOW,
        next_attempt_at=NOW,
    ).mark_sent("m-1", NOW)
    pending = sent.model_copy(update={"id": "ntf-2", "status": NotificationStatus.PENDING})
    data.rows += [sent, pending]
    account = data.write(deps.accounts)  # type: ignore[arg-type]

    view = deps.notification_email(account.id, ADMIN, "ap@contoso.example")

    partition = deps.accounts.load(account.id)
    assert view.changed is True
    assert partition.account is not None
    assert partition.account.notification_email == "ap@contoso.example"
    assert {n.id: n.to_address for n in partition.notifications} == {
        "ntf-1": "billing@contoso.example",
        "ntf-2": "ap@contoso.example",
    }


def test_the_same_address_again_writes_nothing_and_an_invalid_one_is_refused(
    deps: Dependencies, account: AccountData
) -> None:
    version = deps.accounts.load(account.id).version

    assert deps.notification_email(account.id, ADMIN, "billing@contoso.example").changed is False
    with pytest.raises(InvalidNotificationEmailError):
        deps.notification_email(account.id, ADMIN, "not an address")
    assert deps.accounts.load(account.id).version == version


# --- paying ---------------------------------------------------------------------------------------------------------


def test_paying_the_quoted_total_with_a_new_card_settles_every_subscription_on_the_failed_card(
    deps: Dependencies, account: AccountData
) -> None:
    quote = deps.quote_settlement(account.id, ADMIN, "sub-a")

    outcome = deps.settle_balance(settle_command(account.id, "key-1", quote_version=quote.quote_version))

    new_card = new_card_id(settlement_id_for(account.id, "key-1"))
    assert outcome.status is SettlementStatus.SUCCEEDED
    assert outcome.charged.amount == "69.95"
    assert outcome.reenabled_subscriptions == ("sub-a", "sub-b")
    assert outcome.switched_subscriptions == ("sub-a", "sub-b", "sub-c")
    assert states(deps, account) == {
        "sub-a": (SubscriptionState.ENABLED, new_card),
        "sub-b": (SubscriptionState.ENABLED, new_card),
        "sub-c": (SubscriptionState.ENABLED, new_card),
        "sub-d": (SubscriptionState.ENABLED, MASTERCARD),
    }
    partition = deps.accounts.load(account.id)
    assert {c.invoice_id: c.status for c in partition.charges} == {
        "inv-1": ChargeStatus.PAID,
        "inv-2": ChargeStatus.PAID,
    }
    assert all(not alert.is_open for alert in partition.alerts)
    assert charged_keys(deps) == [settlement_id_for(account.id, "key-1")]


def test_a_payment_sends_one_receipt_and_publishes_its_lifecycle_events(
    deps: Dependencies, account: AccountData
) -> None:
    deps.settle_balance(settle_command(account.id, "key-1"))

    (receipt,) = deps.email.sent  # type: ignore[attr-defined]
    assert receipt.to_address == "billing@contoso.example"
    assert "€69.95" in receipt.subject
    events = deps.events.cloudevents  # type: ignore[attr-defined]
    assert sorted(e["data"]["subscriptionId"] for e in events if e["type"] == "subscription.enabled") == [
        "sub-a",
        "sub-b",
    ]
    (replaced,) = [e for e in events if e["type"] == "payment_method.replaced"]
    assert replaced["data"]["previousPaymentMethodId"] == VISA
    assert deps.accounts.load(account.id).pending_events == []


def test_the_same_key_replays_the_first_answer_and_never_charges_twice(
    deps: Dependencies, account: AccountData
) -> None:
    command = settle_command(account.id, "key-1")
    first = deps.settle_balance(command)

    again = deps.settle_balance(command)

    assert again.replayed is True
    assert again.to_wire() == first.to_wire()
    assert charged_keys(deps) == [first.settlement_id]
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_the_same_key_with_another_body_is_refused(deps: Dependencies, account: AccountData) -> None:
    deps.settle_balance(settle_command(account.id, "key-1"))

    with pytest.raises(IdempotencyKeyReusedError):
        deps.settle_balance(settle_command(account.id, "key-1", payment=PaymentChoice(token="tok_mastercard")))


def test_a_decline_changes_nothing_but_the_attempt_and_a_new_key_can_pay(
    deps: Dependencies, account: AccountData
) -> None:
    declined = settle_command(account.id, "key-d", payment=PaymentChoice(token="tok_decline"))

    outcome = deps.settle_balance(declined)

    assert (outcome.status, outcome.reason) == (SettlementStatus.DECLINED, "card_declined")
    assert states(deps, account)["sub-a"] == (SubscriptionState.PAST_DUE, VISA)
    assert [a.is_open for a in deps.accounts.load(account.id).alerts] == [True]
    assert deps.settle_balance(declined).status is SettlementStatus.DECLINED
    assert deps.settle_balance(settle_command(account.id, "key-2")).status is SettlementStatus.SUCCEEDED


def test_a_total_that_is_not_the_whole_balance_is_answered_with_the_full_quote(
    deps: Dependencies, account: AccountData
) -> None:
    with pytest.raises(QuoteChangedError) as refused:
        deps.settle_balance(settle_command(account.id, expected_total=Money.parse("49.95", "EUR")))

    assert refused.value.quote.total.amount == "69.95"
    assert charged_keys(deps) == []
    assert deps.accounts.load(account.id).all(Settlement) == []


def test_a_quote_survives_an_unrelated_write_but_not_a_change_to_its_charges(
    deps: Dependencies, account: AccountData
) -> None:
    quote = deps.quote_settlement(account.id, ADMIN, "sub-a")
    unrelated = deps.accounts.load(account.id)
    unrelated.put(Alert(id="alert-other", kind=AlertKind.REMINDER, created_at=NOW))
    deps.accounts.commit(unrelated)
    assert deps.quote_settlement(account.id, ADMIN, "sub-a").quote_version == quote.quote_version

    changed = deps.accounts.load(account.id)
    changed.put(changed.charges[0].model_copy(update={"service": "Azure (renamed)"}))
    deps.accounts.commit(changed)

    with pytest.raises(QuoteChangedError):
        deps.settle_balance(settle_command(account.id, quote_version=quote.quote_version))


def test_a_failure_landing_between_the_read_and_the_claim_loses_the_claim_its_race_and_nothing_is_charged(
    deps: Dependencies, account: AccountData
) -> None:
    quote = deps.quote_settlement(account.id, ADMIN, "sub-a")

    def payment_failed_meanwhile(partition: AccountPartition) -> None:
        partition.put(charge("inv-late", "sub-c", "5.00"))

    racing = RacingAccounts(
        deps.accounts, lambda: with_fresh_partition(deps.accounts, account.id, payment_failed_meanwhile)
    )
    with pytest.raises(QuoteChangedError) as refused:
        dataclasses.replace(deps, accounts=racing).settle_balance(
            settle_command(account.id, "key-race", quote_version=quote.quote_version)
        )

    assert racing.races == 1
    assert refused.value.quote.total.amount == "74.95"  # decided again on the fresh read
    assert charged_keys(deps) == []
    assert deps.accounts.load(account.id).all(Settlement) == []


def test_an_unrelated_write_that_wins_the_race_only_delays_the_claim(deps: Dependencies, account: AccountData) -> None:
    def operator_adds_an_alert(partition: AccountPartition) -> None:
        partition.put(Alert(id="alert-other", kind=AlertKind.REMINDER, created_at=NOW))

    racing = RacingAccounts(
        deps.accounts, lambda: with_fresh_partition(deps.accounts, account.id, operator_adds_an_alert)
    )
    outcome = dataclasses.replace(deps, accounts=racing).settle_balance(settle_command(account.id, "key-1"))

    assert racing.races == 1
    assert outcome.status is SettlementStatus.SUCCEEDED
    assert "alert-other" in [a.id for a in deps.accounts.load(account.id).alerts]
    assert charged_keys(deps) == [outcome.settlement_id]


# --- the gateway's trouble ------------------------------------------------------------------------------------------


def test_a_gateway_timeout_leaves_the_payment_pending_until_a_retry_looks_it_up(
    deps: Dependencies, account: AccountData
) -> None:
    command = settle_command(account.id, "key-t", payment=PaymentChoice(token="tok_timeout"))

    first = deps.settle_balance(command)

    assert (first.status, first.reason) == (SettlementStatus.PENDING, "gateway_timeout")
    assert states(deps, account)["sub-a"][0] is SubscriptionState.PAST_DUE
    assert deps.settle_balance(command).status is SettlementStatus.SUCCEEDED
    assert charged_keys(deps) == [settlement_id_for(account.id, "key-t")]
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_a_crash_right_after_the_charge_is_completed_by_the_retry_without_charging_twice(
    deps: Dependencies, account: AccountData
) -> None:
    command = settle_command(account.id, "key-c")
    crashing = FaultyPort(deps.gateway, Fault("charge", error=SimulatedCrash, applied=True))

    with pytest.raises(SimulatedCrash):
        dataclasses.replace(deps, gateway=crashing).settle_balance(command)
    assert states(deps, account)["sub-a"][0] is SubscriptionState.PAST_DUE

    outcome = deps.settle_balance(command)

    assert outcome.status is SettlementStatus.SUCCEEDED
    assert charged_keys(deps) == [settlement_id_for(account.id, "key-c")]


def test_a_claim_whose_charge_never_happened_is_released_after_the_expiry(
    deps: Dependencies, account: AccountData, clock: FixedClock
) -> None:
    crashed = settle_command(account.id, "key-crashed")
    crashing = FaultyPort(deps.gateway, Fault("charge", error=SimulatedCrash))  # dies before the gateway call
    with pytest.raises(SimulatedCrash):
        dataclasses.replace(deps, gateway=crashing).settle_balance(crashed)
    assert any(entry.account_id == account.id for entry in deps.due.due(NOW + PENDING_CHARGE_EXPIRY))
    with pytest.raises(SettlementInProgressError):  # within the expiry, the claim blocks every other key
        deps.settle_balance(settle_command(account.id, "key-other"))
    clock.advance(PENDING_CHARGE_EXPIRY * 2)

    fresh = deps.settle_balance(settle_command(account.id, "key-fresh"))

    assert fresh.status is SettlementStatus.SUCCEEDED
    stale = deps.settle_balance(crashed)
    assert (stale.status, stale.reason) == (SettlementStatus.DECLINED, "not_charged")
    assert charged_keys(deps) == [settlement_id_for(account.id, "key-fresh")]


def test_paying_by_invoice_answers_with_remittance_details_and_changes_no_state(
    deps: Dependencies, account: AccountData
) -> None:
    outcome = deps.settle_balance(settle_command(account.id, "key-inv", payment=PaymentChoice(invoice=True)))

    assert outcome.status is SettlementStatus.PENDING
    assert outcome.remittance is not None
    assert (outcome.remittance.amount, outcome.remittance.iban) == ("69.95", deps.settings.remittance_iban)
    assert outcome.remittance.reference.startswith("PD-")
    assert states(deps, account)["sub-a"][0] is SubscriptionState.PAST_DUE
    assert charged_keys(deps) == []

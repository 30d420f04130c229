"""The settle-balance services against Azurite: quotes, the all-at-once rule, every sandbox outcome, repeats."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Alert, ChargeStatus, PaymentMethod, PaymentMethodStatus, Subscription
from shared.domain.money import Money
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.settle_balance import (
    PENDING_CHARGE_EXPIRY,
    AccountNotFoundError,
    IdempotencyKeyReusedError,
    PaymentChoice,
    PaymentMethodNotChargeableError,
    PaymentMethodNotFoundError,
    PrincipalNotAllowedError,
    SubscriptionDeletedError,
    SubscriptionNotFoundError,
    new_card_id,
    settlement_id_for,
)
from shared.domain.settlement import NothingToSettleError, Settlement, SettlementStatus
from shared.services.account_views import (
    InvalidNotificationEmailError,
)
from shared.services.settle_balance import QuoteChangedError
from shared.storage.sandbox_gateway import SandboxGateway
from tests.fakes import Fault, FaultyPort
from tests.support.settlement_data import (
    ADMIN,
    MASTERCARD,
    NOW,
    VISA,
    AccountData,
    charge,
    lifecycle_events,
    past_due,
    sent_emails,
    settle_command,
    settlement_deps,
    shared_card_account,
)

pytestmark = pytest.mark.azurite


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path, clock: FixedClock) -> Dependencies:
    return settlement_deps(azurite.connection_string, tmp_path / "outbox", clock)


@pytest.fixture
def account(deps: Dependencies) -> AccountData:
    return shared_card_account().write(deps.accounts)


def load(deps: Dependencies, account: AccountData) -> AccountPartition:
    return deps.accounts.load(account.id)


def states(partition: AccountPartition) -> dict[str, tuple[SubscriptionState, str]]:
    return {s.id: (s.state, s.payment_method_id) for s in partition.subscriptions}


def charges_of(deps: Dependencies, settlement_ids: set[str]) -> int:
    gateway = deps.gateway
    assert isinstance(gateway, SandboxGateway)
    return sum(1 for result in gateway.ledger() if result.idempotency_key in settlement_ids)


# --- a successful payment -------------------------------------------------------------------------------------


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
    assert outcome.active_payment_method_id == new_card
    partition = load(deps, account)
    assert states(partition) == {
        "sub-a": (SubscriptionState.ENABLED, new_card),
        "sub-b": (SubscriptionState.ENABLED, new_card),
        "sub-c": (SubscriptionState.ENABLED, new_card),
        "sub-d": (SubscriptionState.ENABLED, MASTERCARD),
    }
    assert {c.invoice_id: c.status for c in partition.charges} == {
        "inv-1": ChargeStatus.PAID,
        "inv-2": ChargeStatus.PAID,
    }
    card = partition.get(PaymentMethod, new_card)
    assert card is not None
    assert (card.brand, card.last4, card.status) == ("visa", "4242", PaymentMethodStatus.ACTIVE)
    assert all(not alert.is_open for alert in partition.alerts)


def test_a_successful_payment_sends_one_receipt_and_publishes_the_lifecycle_events(
    deps: Dependencies, account: AccountData
) -> None:
    deps.settle_balance(settle_command(account.id, "key-1"))

    emails = sent_emails(deps)
    assert len(emails) == 1
    assert emails[0]["To"] == "billing@contoso.example"
    assert "€69.95" in emails[0]["Subject"]
    receipt = load(deps, account).get(Notification, f"receipt-{settlement_id_for(account.id, 'key-1')}")
    assert receipt is not None
    assert receipt.status is NotificationStatus.SENT
    events = lifecycle_events(deps)
    enabled = sorted(e["data"]["subscriptionId"] for e in events if e["type"] == "subscription.enabled")
    replaced = [e for e in events if e["type"] == "payment_method.replaced"]
    assert enabled == ["sub-a", "sub-b"]
    assert len(replaced) == 1
    assert replaced[0]["data"]["previousPaymentMethodId"] == VISA
    assert replaced[0]["data"]["subscriptionIds"] == ["sub-a", "sub-b", "sub-c"]
    assert all(e["specversion"] == "1.0" and e["source"] for e in events)
    assert load(deps, account).pending_events == []


def test_the_receipt_is_written_in_the_accounts_locale(deps: Dependencies) -> None:
    account = shared_card_account(locale="nl-NL").write(deps.accounts)

    deps.settle_balance(settle_command(account.id))

    assert sent_emails(deps)[0]["Subject"].startswith("Betaling ontvangen: €\u00a069,95")


def test_a_payment_whose_receipt_went_out_leaves_nothing_on_the_due_index(
    deps: Dependencies, account: AccountData
) -> None:
    deps.settle_balance(settle_command(account.id))

    assert [entry for entry in deps.due.due(NOW.replace(year=2027)) if entry.account_id == account.id] == []


def test_a_payment_whose_delivery_died_leaves_its_safety_net_for_a_later_pass(
    deps: Dependencies, account: AccountData
) -> None:
    failing = dataclasses.replace(deps, email=FaultyPort(deps.email, Fault("send", error=RuntimeError("ACS down"))))

    outcome = failing.settle_balance(settle_command(account.id))

    assert outcome.status is SettlementStatus.SUCCEEDED
    (net,) = [entry for entry in deps.due.due(NOW.replace(year=2027)) if entry.account_id == account.id]
    assert NOW < net.due_at <= NOW + PENDING_CHARGE_EXPIRY + timedelta(seconds=1)


def test_paying_with_the_failed_card_itself_reactivates_it_without_a_method_switch(
    deps: Dependencies, account: AccountData
) -> None:
    outcome = deps.settle_balance(settle_command(account.id, payment=PaymentChoice(payment_method_id=VISA)))

    assert outcome.status is SettlementStatus.SUCCEEDED
    assert outcome.switched_subscriptions == ()
    partition = load(deps, account)
    visa = partition.get(PaymentMethod, VISA)
    assert visa is not None
    assert visa.status is PaymentMethodStatus.ACTIVE
    assert states(partition)["sub-a"] == (SubscriptionState.ENABLED, VISA)
    assert [e["type"] for e in lifecycle_events(deps)] == ["subscription.enabled", "subscription.enabled"]


def test_a_selected_method_with_its_own_debt_is_paid_in_the_same_payment(deps: Dependencies) -> None:
    data = shared_card_account()
    data.rows = [r for r in data.rows if not (isinstance(r, Subscription) and r.id == "sub-d")]
    data.rows += [past_due("sub-d", "Analytics", method=MASTERCARD), charge("inv-9", "sub-d", "15.05", MASTERCARD)]
    account = data.write(deps.accounts)
    quote = deps.quote_settlement(account.id, ADMIN, "sub-a", MASTERCARD)
    assert quote.total.amount == "85.00"

    outcome = deps.settle_balance(
        settle_command(
            account.id,
            payment=PaymentChoice(payment_method_id=MASTERCARD),
            expected_total=Money.parse("85.00", "EUR"),
        ),
    )

    assert outcome.status is SettlementStatus.SUCCEEDED
    assert outcome.paid_invoices == ("inv-2", "inv-1", "inv-9")
    assert outcome.reenabled_subscriptions == ("sub-a", "sub-b", "sub-d")
    assert {s for s, (state, method) in states(load(deps, account)).items() if method == MASTERCARD} == {
        "sub-a",
        "sub-b",
        "sub-c",
        "sub-d",
    }


# --- the all-at-once rule and stale quotes --------------------------------------------------------------------


def test_paying_only_one_subscriptions_share_is_refused_with_the_full_quote_and_nothing_is_charged(
    deps: Dependencies, account: AccountData
) -> None:
    command = settle_command(account.id, "key-partial", expected_total=Money.parse("49.95", "EUR"))

    with pytest.raises(QuoteChangedError) as refused:
        deps.settle_balance(command)

    assert refused.value.quote.total.amount == "69.95"
    assert charges_of(deps, {settlement_id_for(account.id, "key-partial")}) == 0
    assert load(deps, account).all(Settlement) == []
    assert states(load(deps, account))["sub-a"][0] is SubscriptionState.PAST_DUE


def test_a_quote_made_stale_by_a_new_failed_charge_is_answered_with_the_new_quote(
    deps: Dependencies, account: AccountData
) -> None:
    quote = deps.quote_settlement(account.id, ADMIN, "sub-a")
    partition = load(deps, account)
    partition.put(charge("inv-3", "sub-c", "5.00"))  # a payment.failed for the sharing subscription lands
    deps.accounts.commit(partition)

    with pytest.raises(QuoteChangedError) as refused:
        deps.settle_balance(settle_command(account.id, "key-stale", quote_version=quote.quote_version))

    assert refused.value.quote.total.amount == "74.95"
    assert refused.value.quote.quote_version != quote.quote_version
    assert charges_of(deps, {settlement_id_for(account.id, "key-stale")}) == 0


def test_a_changed_quote_version_alone_is_stale_even_when_the_total_is_the_same(
    deps: Dependencies, account: AccountData
) -> None:
    with pytest.raises(QuoteChangedError):
        deps.settle_balance(settle_command(account.id, quote_version="q1-000000000000000000000000"))


def test_an_expected_total_in_another_currency_is_refused(deps: Dependencies, account: AccountData) -> None:
    with pytest.raises(QuoteChangedError):
        deps.settle_balance(settle_command(account.id, expected_total=Money.parse("69.95", "USD")))


# --- every sandbox outcome ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", ["tok_visa", "tok_mastercard"])
def test_a_succeeding_test_card_settles_the_balance(deps: Dependencies, account: AccountData, token: str) -> None:
    outcome = deps.settle_balance(settle_command(account.id, payment=PaymentChoice(token=token)))

    assert outcome.status is SettlementStatus.SUCCEEDED
    assert outcome.reason is None


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("tok_decline", "card_declined"),
        ("tok_insufficient_funds", "insufficient_funds"),
        ("tok_expired_card", "expired_card"),
        ("tok_unknown", "invalid_token"),
    ],
)
def test_a_declined_card_changes_nothing_but_the_attempt_record(
    deps: Dependencies, account: AccountData, token: str, reason: str
) -> None:
    before = load(deps, account)

    outcome = deps.settle_balance(settle_command(account.id, "key-d", payment=PaymentChoice(token=token)))

    after = load(deps, account)
    assert outcome.status is SettlementStatus.DECLINED
    assert outcome.reason == reason
    assert outcome.charged.amount == "0.00"
    assert outcome.active_payment_method_id == VISA
    assert states(after) == states(before)
    assert after.charges == before.charges
    assert after.alerts == before.alerts
    assert after.payment_methods == before.payment_methods
    settlement = after.get(Settlement, settlement_id_for(account.id, "key-d"))
    assert settlement is not None
    assert (settlement.status, settlement.reason) == (SettlementStatus.DECLINED, reason)
    assert sent_emails(deps) == []
    assert lifecycle_events(deps) == []


def test_after_a_decline_the_same_key_repeats_the_decline_and_a_new_key_can_pay(
    deps: Dependencies, account: AccountData
) -> None:
    declined = settle_command(account.id, "key-1", payment=PaymentChoice(token="tok_decline"))
    deps.settle_balance(declined)

    assert deps.settle_balance(declined).status is SettlementStatus.DECLINED
    assert deps.settle_balance(settle_command(account.id, "key-2")).status is SettlementStatus.SUCCEEDED


def test_a_gateway_timeout_leaves_the_payment_pending_until_a_retry_looks_it_up(
    deps: Dependencies, account: AccountData
) -> None:
    command = settle_command(account.id, "key-t", payment=PaymentChoice(token="tok_timeout"))

    first = deps.settle_balance(command)

    assert (first.status, first.reason) == (SettlementStatus.PENDING, "gateway_timeout")
    assert states(load(deps, account))["sub-a"][0] is SubscriptionState.PAST_DUE
    retried = deps.settle_balance(command)
    assert retried.status is SettlementStatus.SUCCEEDED
    assert charges_of(deps, {settlement_id_for(account.id, "key-t")}) == 1
    assert states(load(deps, account))["sub-a"][0] is SubscriptionState.ENABLED
    assert len(sent_emails(deps)) == 1


def test_a_payment_whose_outcome_was_unknown_is_completed_by_the_next_retention_run(
    deps: Dependencies, account: AccountData, clock: FixedClock
) -> None:
    command = settle_command(account.id, "key-rt", payment=PaymentChoice(token="tok_timeout"))
    assert deps.settle_balance(command).status is SettlementStatus.PENDING

    clock.advance(PENDING_CHARGE_EXPIRY + timedelta(minutes=1))
    deps.run_retention(now=clock.now(), time_budget=timedelta(minutes=1))

    settlement = load(deps, account).get(Settlement, settlement_id_for(account.id, "key-rt"))
    assert settlement is not None
    assert settlement.status is SettlementStatus.SUCCEEDED
    assert states(load(deps, account))["sub-a"][0] is SubscriptionState.ENABLED
    assert charges_of(deps, {settlement.id}) == 1
    assert deps.settle_balance(command).status is SettlementStatus.SUCCEEDED  # the portal's retry: no new charge
    assert charges_of(deps, {settlement.id}) == 1


# --- idempotency keys -----------------------------------------------------------------------------------------


def test_the_same_key_replays_the_first_result_and_never_charges_twice(
    deps: Dependencies, account: AccountData
) -> None:
    command = settle_command(account.id, "key-1")

    first = deps.settle_balance(command)
    again = deps.settle_balance(command)

    assert again.replayed is True
    assert again.to_wire() == first.to_wire()
    assert charges_of(deps, {first.settlement_id}) == 1
    assert len(sent_emails(deps)) == 1


def test_the_same_key_with_another_body_is_refused(deps: Dependencies, account: AccountData) -> None:
    deps.settle_balance(settle_command(account.id, "key-1"))

    with pytest.raises(IdempotencyKeyReusedError):
        deps.settle_balance(settle_command(account.id, "key-1", payment=PaymentChoice(token="tok_mastercard")))


def test_the_same_key_on_another_account_is_another_settlement(deps: Dependencies) -> None:
    first = shared_card_account().write(deps.accounts)
    second = shared_card_account().write(deps.accounts)

    one = deps.settle_balance(settle_command(first.id, "shared-key"))
    two = deps.settle_balance(settle_command(second.id, "shared-key"))

    assert one.settlement_id != two.settlement_id
    assert two.status is SettlementStatus.SUCCEEDED


# --- who may act, and on what ---------------------------------------------------------------------------------


def test_only_the_accounts_admin_principal_may_act(deps: Dependencies, account: AccountData) -> None:
    with pytest.raises(PrincipalNotAllowedError):
        deps.account_overview(account.id, "user-8")
    with pytest.raises(PrincipalNotAllowedError):
        deps.quote_settlement(account.id, "user-8", "sub-a")
    with pytest.raises(PrincipalNotAllowedError):
        deps.settle_balance(settle_command(account.id, principal_id="user-8"))
    with pytest.raises(PrincipalNotAllowedError):
        deps.notification_email(account.id, "user-8")
    assert load(deps, account).all(Settlement) == []


def test_an_unknown_account_is_not_found(deps: Dependencies) -> None:
    with pytest.raises(AccountNotFoundError):
        deps.account_overview("acc-does-not-exist", ADMIN)


def test_a_subscription_of_another_account_is_not_found(deps: Dependencies, account: AccountData) -> None:
    other = shared_card_account().write(deps.accounts)
    partition = deps.accounts.load(other.id)
    partition.put(past_due("sub-other", "Elsewhere"), charge("inv-o", "sub-other", "1.00"))
    deps.accounts.commit(partition)

    with pytest.raises(SubscriptionNotFoundError):
        deps.quote_settlement(account.id, ADMIN, "sub-other")
    with pytest.raises(SubscriptionNotFoundError):
        deps.settle_balance(settle_command(account.id, subscription_id="sub-other"))


def test_a_payment_method_of_another_account_is_not_found(deps: Dependencies, account: AccountData) -> None:
    with pytest.raises(PaymentMethodNotFoundError):
        deps.quote_settlement(account.id, ADMIN, "sub-a", "pm-elsewhere")
    with pytest.raises(PaymentMethodNotFoundError):
        deps.settle_balance(settle_command(account.id, payment=PaymentChoice(payment_method_id="pm-elsewhere")))


def test_a_card_on_file_without_a_gateway_token_cannot_be_charged(deps: Dependencies) -> None:
    data = shared_card_account()
    data.rows.append(PaymentMethod(id="pm-amex-0005", kind="card", brand="amex", last4="0005"))
    account = data.write(deps.accounts)

    with pytest.raises(PaymentMethodNotChargeableError):
        deps.settle_balance(settle_command(account.id, payment=PaymentChoice(payment_method_id="pm-amex-0005")))


def test_a_deleted_subscription_cannot_be_settled(deps: Dependencies, account: AccountData) -> None:
    partition = load(deps, account)
    subscription = partition.get(Subscription, "sub-a")
    assert subscription is not None
    partition.put(subscription.model_copy(update={"state": SubscriptionState.DELETED}))
    deps.accounts.commit(partition)

    with pytest.raises(SubscriptionDeletedError):
        deps.quote_settlement(account.id, ADMIN, "sub-a")


def test_a_subscription_without_debt_has_nothing_to_settle(deps: Dependencies, account: AccountData) -> None:
    with pytest.raises(NothingToSettleError):
        deps.quote_settlement(account.id, ADMIN, "sub-c")


# --- the notification address ---------------------------------------------------------------------------------


def pending_notification(at_minutes: int, status: NotificationStatus = NotificationStatus.PENDING) -> Notification:
    return Notification(
        id=f"ntf-{at_minutes}",
        template="payment_failed",
        locale="en-US",
        to_address="billing@contoso.example",
        context={},
        created_at=NOW.replace(minute=at_minutes),
        next_attempt_at=NOW.replace(hour=23),
        status=status,
        last_error="bounced" if status is NotificationStatus.FAILED else None,
    )


def test_reading_the_notification_address_shows_the_last_notifications_newest_first(deps: Dependencies) -> None:
    data = shared_card_account()
    data.rows += [pending_notification(1, NotificationStatus.FAILED), pending_notification(2)]
    account = data.write(deps.accounts)

    view = deps.notification_email(account.id, ADMIN)

    assert view.notification_email == "billing@contoso.example"
    assert view.changed is False
    assert [(n.id, n.status, n.last_error) for n in view.last_notifications] == [
        ("ntf-2", NotificationStatus.PENDING, None),
        ("ntf-1", NotificationStatus.FAILED, "bounced"),
    ]


def test_changing_the_address_redirects_emails_not_yet_sent(deps: Dependencies) -> None:
    data = shared_card_account()
    data.rows += [pending_notification(1, NotificationStatus.FAILED), pending_notification(2)]
    account = data.write(deps.accounts)

    view = deps.notification_email(account.id, ADMIN, "ap@contoso.example")

    partition = load(deps, account)
    assert view.changed is True
    assert partition.account is not None
    assert partition.account.notification_email == "ap@contoso.example"
    addresses = {n.id: n.to_address for n in partition.notifications}
    assert addresses == {"ntf-1": "billing@contoso.example", "ntf-2": "ap@contoso.example"}


def test_setting_the_same_address_again_writes_nothing(deps: Dependencies, account: AccountData) -> None:
    version = load(deps, account).version

    view = deps.notification_email(account.id, ADMIN, "billing@contoso.example")

    assert view.changed is False
    assert load(deps, account).version == version


def test_an_invalid_address_is_refused(deps: Dependencies, account: AccountData) -> None:
    with pytest.raises(InvalidNotificationEmailError):
        deps.notification_email(account.id, ADMIN, "not an address")


def test_alerts_about_other_methods_stay_open(deps: Dependencies) -> None:
    data = shared_card_account()
    data.rows.append(Alert(id="alert-other", kind="payment_failed", payment_method_id="pm-other", created_at=NOW))
    data.rows.append(charge("inv-x", "sub-z", "3.00", "pm-other"))
    account = data.write(deps.accounts)

    deps.settle_balance(settle_command(account.id))

    open_alerts = [a.id for a in load(deps, account).alerts if a.is_open]
    assert open_alerts == ["alert-other"]

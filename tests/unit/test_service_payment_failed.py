"""`payment.failed` on the in-memory fakes: every effect once, repeats, a lost race, an interrupted delivery."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest

from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.email import SendOutcome
from shared.domain.errors import TransientStorageError
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Alert, AlertKind, PaymentMethodStatus, Subscription
from shared.domain.outbox import NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import PaymentFailedEvent
from shared.domain.payment_failure import (
    EventReplayConflictError,
    PaymentFailedOutcome,
    PaymentFailedResult,
    alert_id,
    event_payload_hash,
    notification_id,
    stage_payment_failed,
)
from shared.locales import format_date
from shared.services.unit_of_work import with_fresh_partition
from shared.settings import Settings, retention_policy
from tests.fakes import Fault, FaultyPort, RacingAccounts, build_in_memory
from tests.support.payment_events import PORTAL, a_charge, payment_failed_document

NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)
ACCOUNT = "acc-1001"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(clock: FixedClock) -> Dependencies:
    return build_in_memory(Settings(portal_base_url=PORTAL), clock)


def event_of(**changes: object) -> PaymentFailedEvent:
    return PaymentFailedEvent.model_validate(payment_failed_document(ACCOUNT, **changes))  # type: ignore[arg-type]


def states(partition: AccountPartition) -> dict[str, SubscriptionState]:
    return {s.id: s.state for s in partition.subscriptions}


def test_a_failed_payment_puts_the_charged_subscription_past_due_and_records_the_alert_and_the_email(
    deps: Dependencies,
) -> None:
    result = deps.apply_payment_failed(event_of())

    partition = deps.accounts.load(ACCOUNT)
    assert result.outcome is PaymentFailedOutcome.APPLIED
    assert result.past_due_subscription_ids == ("sub-a",)
    assert states(partition) == {"sub-a": SubscriptionState.PAST_DUE, "sub-b": SubscriptionState.ENABLED}
    (method,) = partition.payment_methods
    assert (method.id, method.status, method.failed_at) == ("pm-visa-4242", PaymentMethodStatus.FAILED, NOW)
    assert [c.invoice_id for c in partition.charges] == ["inv-1"]
    assert partition.alerts == [
        Alert(
            id=alert_id("pm-visa-4242"),
            kind=AlertKind.PAYMENT_FAILED,
            payment_method_id="pm-visa-4242",
            subscription_ids=("sub-a",),
            created_at=NOW,
            effective_date=date(2026, 12, 24),
        )
    ]
    assert partition.has_processed("evt-0001") is not None


def test_the_email_is_rendered_in_the_accounts_language_and_sent_once(deps: Dependencies) -> None:
    result = deps.apply_payment_failed(event_of())

    (notification,) = deps.accounts.load(ACCOUNT).notifications
    assert notification.id == notification_id("evt-0001") == result.notification_id
    assert result.emails_sent == (notification.id,)
    assert notification.status is NotificationStatus.SENT
    (email,) = deps.email.sent  # type: ignore[attr-defined]
    assert email.to_address == "billing@contoso.example"
    assert "Visa •••• 4242" in email.plain_text
    assert "49,95" in email.plain_text  # nl-NL writes a decimal comma
    assert f"{PORTAL}/accounts/{ACCOUNT}/settle?subscription=sub-a" in email.html


def test_only_the_first_reminder_goes_on_the_due_index_the_queue_is_the_deliverys_safety_net(
    deps: Dependencies,
) -> None:
    deps.apply_payment_failed(event_of())

    scheduled = [entry.due_at for entry in deps.due.due(NOW + timedelta(days=60))]
    assert scheduled == [NOW + timedelta(days=7)]


def test_the_same_event_again_is_a_duplicate_that_changes_nothing_and_sends_nothing(deps: Dependencies) -> None:
    deps.apply_payment_failed(event_of())
    before = deps.accounts.load(ACCOUNT)

    repeats = [deps.apply_payment_failed(event_of()) for _ in range(3)]

    after = deps.accounts.load(ACCOUNT)
    assert {r.outcome for r in repeats} == {PaymentFailedOutcome.DUPLICATE}
    assert (after.version, after.rows) == (before.version, before.rows)
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_the_same_event_id_with_other_content_is_refused_and_changes_nothing(deps: Dependencies) -> None:
    deps.apply_payment_failed(event_of())
    before = deps.accounts.load(ACCOUNT)

    with pytest.raises(EventReplayConflictError):
        deps.apply_payment_failed(event_of(charges=[a_charge("inv-9", "sub-b")]))

    after = deps.accounts.load(ACCOUNT)
    assert (after.version, after.rows) == (before.version, before.rows)


def test_a_second_failure_on_the_same_card_adds_to_the_total_and_keeps_one_alert(
    deps: Dependencies, clock: FixedClock
) -> None:
    deps.apply_payment_failed(event_of(event_id="evt-1"))
    clock.advance(timedelta(days=3))

    result = deps.apply_payment_failed(event_of(event_id="evt-2", charges=[a_charge("inv-2", "sub-b", "10.05")]))

    partition = deps.accounts.load(ACCOUNT)
    assert result.past_due_subscription_ids == ("sub-b",)
    (alert,) = partition.alerts
    assert alert.subscription_ids == ("sub-a", "sub-b")
    latest = next(n for n in partition.notifications if n.id == notification_id("evt-2"))
    assert latest.context["total_outstanding"] == "60.00"
    assert len(deps.email.sent) == 2  # type: ignore[attr-defined]


def test_an_event_with_more_rows_than_one_transaction_is_committed_completely(deps: Dependencies) -> None:
    charges = [a_charge(f"inv-{n:03d}", f"sub-{n:03d}", "1.00") for n in range(120)]
    subscriptions = [{"id": f"sub-{n:03d}", "name": f"S{n}", "service": "Azure"} for n in range(120)]

    deps.apply_payment_failed(event_of(charges=charges, subscriptions=subscriptions))

    partition = deps.accounts.load(ACCOUNT)
    assert len(partition.charges) == 120
    assert set(states(partition).values()) == {SubscriptionState.PAST_DUE}


def test_when_another_worker_applies_the_same_event_first_the_loser_rereads_and_finds_a_duplicate(
    deps: Dependencies,
) -> None:
    event = event_of()
    winner: list[PaymentFailedResult] = []
    racing = RacingAccounts(deps.accounts, lambda: winner.append(deps.apply_payment_failed(event)))

    result = dataclasses.replace(deps, accounts=racing).apply_payment_failed(event)

    partition = deps.accounts.load(ACCOUNT)
    assert racing.races == 1
    assert [w.outcome for w in winner] == [PaymentFailedOutcome.APPLIED]
    assert result.outcome is PaymentFailedOutcome.DUPLICATE  # decided again on the fresh read
    assert len(partition.subscriptions[0].history) == 1
    assert len(partition.notifications) == 1
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_a_winner_that_died_before_delivering_leaves_the_email_to_the_loser_which_sends_it_once(
    deps: Dependencies,
) -> None:
    event = event_of()

    def commit_without_delivering(partition: AccountPartition) -> None:
        stage_payment_failed(
            partition,
            event,
            payload_hash=event_payload_hash(event),
            now=NOW,
            policies=deps.policies,
            portal_base_url=deps.settings.portal_base_url,
        )

    racing = RacingAccounts(
        deps.accounts, lambda: with_fresh_partition(deps.accounts, ACCOUNT, commit_without_delivering)
    )
    result = dataclasses.replace(deps, accounts=racing).apply_payment_failed(event)

    partition = deps.accounts.load(ACCOUNT)
    assert result.outcome is PaymentFailedOutcome.DUPLICATE
    assert [n.status for n in partition.notifications] == [NotificationStatus.SENT]
    assert result.emails_sent == (notification_id("evt-0001"),)
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_an_unrelated_change_that_wins_the_race_is_kept_beside_the_redone_event(deps: Dependencies) -> None:
    def operator_adds_a_subscription(partition: AccountPartition) -> None:
        partition.set_account(event_of().data.account.to_account())
        partition.put(Subscription(id="sub-z", name="Z", service="Azure", payment_method_id="pm-other"))

    racing = RacingAccounts(
        deps.accounts, lambda: with_fresh_partition(deps.accounts, ACCOUNT, operator_adds_a_subscription)
    )
    result = dataclasses.replace(deps, accounts=racing).apply_payment_failed(event_of())

    assert racing.races == 1
    assert result.outcome is PaymentFailedOutcome.APPLIED
    assert states(deps.accounts.load(ACCOUNT)) == {
        "sub-a": SubscriptionState.PAST_DUE,
        "sub-b": SubscriptionState.ENABLED,
        "sub-z": SubscriptionState.ENABLED,
    }


def test_a_throttled_email_stays_pending_and_is_put_on_the_due_index_for_a_retry(deps: Dependencies) -> None:
    deps.email.answer_next(SendOutcome.retry("HTTP 429", retry_after_seconds=600))  # type: ignore[attr-defined]

    result = deps.apply_payment_failed(event_of())

    (notification,) = deps.accounts.load(ACCOUNT).notifications
    assert result.emails_sent == ()
    assert (notification.status, notification.attempts) == (NotificationStatus.PENDING, 1)
    assert notification.next_attempt_at == NOW + timedelta(minutes=10)
    assert NOW + timedelta(minutes=10) in [entry.due_at for entry in deps.due.due(NOW + timedelta(days=1))]
    assert deps.email.sent == []  # type: ignore[attr-defined]


def test_a_storage_outage_while_recording_the_delivery_is_finished_by_the_next_delivery(deps: Dependencies) -> None:
    # The effects commit (call 1); recording the sent email (call 2) is lost to an outage after the email went out.
    flaky = FaultyPort(deps.accounts, Fault("commit", call=2, error=TransientStorageError("storage went away")))

    with pytest.raises(TransientStorageError):
        dataclasses.replace(deps, accounts=flaky).apply_payment_failed(event_of())
    (pending,) = deps.accounts.load(ACCOUNT).notifications
    assert pending.status is NotificationStatus.PENDING

    report = deps.deliver(ACCOUNT)

    assert report.sent == [pending.id]
    assert [n.status for n in deps.accounts.load(ACCOUNT).notifications] == [NotificationStatus.SENT]
    assert len(deps.email.attempts) == 2  # type: ignore[attr-defined]
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def with_token(token: str, reason: str = "insufficient_funds") -> PaymentFailedEvent:
    document = payment_failed_document(ACCOUNT, reason=reason)
    document["data"]["paymentMethod"]["gatewayToken"] = token
    return PaymentFailedEvent.model_validate(document)


def test_the_email_names_the_first_automatic_retry_when_the_card_will_be_retried(deps: Dependencies) -> None:
    deps.apply_payment_failed(with_token("tok_recovers_on_retry"))

    (email,) = deps.email.sent  # type: ignore[attr-defined]
    first_retry = NOW + timedelta(days=retention_policy(deps.settings).retry_days[0])
    shown = format_date(first_retry.date(), "nl-NL")  # the account's locale
    assert f"Op {shown} proberen we het saldo automatisch opnieuw van deze kaart te innen" in email.plain_text
    assert f"Op {shown} proberen we het saldo automatisch opnieuw" in email.html


def test_the_email_promises_no_retry_for_a_hard_decline(deps: Dependencies) -> None:
    deps.apply_payment_failed(with_token("tok_expired_card", reason="expired_card"))

    (email,) = deps.email.sent  # type: ignore[attr-defined]
    assert "automatisch opnieuw" not in email.plain_text


def test_the_email_promises_no_retry_without_a_gateway_token(deps: Dependencies) -> None:
    deps.apply_payment_failed(event_of())

    (email,) = deps.email.sent  # type: ignore[attr-defined]
    assert "automatisch opnieuw" not in email.plain_text

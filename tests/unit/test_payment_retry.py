"""Automatic retries, decided: which declines are retried, the schedule's rules, and the retry milestones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import Account, Charge, DeclineReason, PaymentMethod, PaymentMethodKind, Subscription
from shared.domain.money import Money
from shared.domain.partition import AccountPartition
from shared.domain.payment_retry import (
    DeclineClass,
    decline_class,
    due_retries,
    may_retry,
    next_retry_at,
    retry_settlement_id,
    retrying_subscription_ids,
    stage_retry_claim,
)
from shared.domain.payment_success import RETRY_RECEIPT_TEMPLATE, stage_payment_success
from shared.domain.retention_policy import MilestoneKind, RetentionPolicy, milestones, next_review_at
from shared.domain.settlement import Settlement
from shared.email import EmailRenderer

FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
POLICY = RetentionPolicy()
ACCOUNT = "acc-retry"


def account_with_failed_card(
    reason: DeclineReason = DeclineReason.INSUFFICIENT_FUNDS, token: str | None = "tok_visa"
) -> AccountPartition:
    partition = AccountPartition(account_id=ACCOUNT)
    partition.set_account(
        Account(
            id=ACCOUNT, admin_principal_id="admin", notification_email="a@example.com", locale="en-US", currency="EUR"
        )
    )
    card = PaymentMethod(
        id="pm-card", kind=PaymentMethodKind.CARD, gateway_token=token, auto_retry=token is not None
    ).mark_failed(reason, FAILED_AT)
    partition.put(card)
    for n in (1, 2):
        subscription = Subscription(
            id=f"sub-{n}", name=f"Workload {n}", service="VMs", payment_method_id=card.id
        ).transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, FAILED_AT)
        charge = Charge(
            invoice_id=f"inv-{n}",
            subscription_id=subscription.id,
            service="VMs",
            amount=Money(minor=1000 * n, currency="EUR"),
            due_date=date(2027, 1, 1),
            payment_method_id=card.id,
        )
        partition.put(subscription, charge)
    return partition


def day(n: float) -> datetime:
    return FAILED_AT + timedelta(days=n)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("insufficient_funds", DeclineClass.SOFT),
        ("do_not_honor", DeclineClass.SOFT),
        ("processing_error", DeclineClass.SOFT),
        ("card_declined", DeclineClass.SOFT),
        ("expired_card", DeclineClass.HARD),
        ("stolen_card", DeclineClass.HARD),
        ("lost_card", DeclineClass.HARD),
        ("invalid_account", DeclineClass.HARD),
        ("invalid_token", DeclineClass.HARD),
    ],
)
def test_each_decline_reason_is_read_as_soft_or_hard(reason: str, expected: DeclineClass) -> None:
    assert decline_class(reason) is expected


@pytest.mark.parametrize("reason", ["expired_card", "stolen_card", "lost_card", "invalid_account", "invoice_overdue"])
def test_a_failure_that_is_not_a_soft_card_decline_is_never_retried(reason: str) -> None:
    partition = account_with_failed_card(DeclineReason(reason))

    assert due_retries(partition, POLICY, day(30)) == []
    assert retrying_subscription_ids(partition) == frozenset()


def test_a_card_without_a_gateway_token_is_never_retried() -> None:
    partition = account_with_failed_card(token=None)

    assert due_retries(partition, POLICY, day(30)) == []
    assert next_retry_at(partition, "sub-1", POLICY, FAILED_AT) is None


def test_a_token_on_file_without_one_in_the_failure_event_is_not_retried() -> None:
    partition = account_with_failed_card()
    (card,) = partition.payment_methods
    partition.put(card.model_copy(update={"auto_retry": False}))

    assert due_retries(partition, POLICY, day(30)) == []


def test_a_soft_decline_with_a_token_is_retried_on_the_first_retry_day() -> None:
    partition = account_with_failed_card()

    assert due_retries(partition, POLICY, day(1) - timedelta(seconds=1)) == []
    (due,) = due_retries(partition, POLICY, day(1))
    assert (due.payment_method_id, due.attempt, due.episode_start) == ("pm-card", 1, FAILED_AT)


def test_a_late_run_makes_only_the_latest_due_attempt() -> None:
    partition = account_with_failed_card()

    (due,) = due_retries(partition, POLICY, day(6))

    assert due.attempt == POLICY.retry_days.index(5) + 1


def test_a_run_late_enough_to_cancel_makes_no_retry() -> None:
    partition = account_with_failed_card()

    assert [d.attempt for d in due_retries(partition, POLICY, day(POLICY.grace_period_days) - timedelta(seconds=1))]
    assert due_retries(partition, POLICY, day(POLICY.grace_period_days)) == []


def test_the_networks_limit_of_15_attempts_in_30_days_counts_the_retries_of_an_earlier_failure_too() -> None:
    partition = account_with_failed_card()
    earlier_failure = FAILED_AT - timedelta(days=20)
    for n in range(1, 14):
        partition.put(
            Settlement(
                id=retry_settlement_id(ACCOUNT, "pm-card", earlier_failure, n),
                subscription_id="sub-1",
                failed_payment_method_id="pm-card",
                payment_method_id="pm-card",
                payment_method_kind=PaymentMethodKind.CARD,
                invoice_ids=("inv-0",),
                total=Money(minor=500, currency="EUR"),
                created_at=earlier_failure + timedelta(hours=n),
                retry_attempt=n,
            ).decline("insufficient_funds", earlier_failure + timedelta(hours=n))
        )

    # 13 retries + the failed charge = 14: one more is allowed, and it would be the 15th
    assert [d.attempt for d in due_retries(partition, POLICY, day(1))] == [1]
    (due,) = due_retries(partition, POLICY, day(1))
    claimed = stage_retry_claim(partition, due, day(1))
    assert claimed is not None
    partition.put(claimed.decline("insufficient_funds", day(1)))
    assert due_retries(partition, POLICY, day(3)) == []
    # Once the earlier retries are more than 30 days old, the card may be tried again.
    assert [d.attempt for d in due_retries(partition, POLICY, day(14))] == [6]


def test_a_claimed_retry_covers_the_whole_balance_of_the_failed_method_and_is_not_due_again() -> None:
    partition = account_with_failed_card()
    (due,) = due_retries(partition, POLICY, day(1))

    claimed = stage_retry_claim(partition, due, day(1))

    assert claimed is not None
    assert claimed.invoice_ids == ("inv-1", "inv-2")
    assert claimed.total == Money(minor=3000, currency="EUR")
    assert claimed.id == retry_settlement_id(ACCOUNT, "pm-card", FAILED_AT, 1)
    assert due_retries(partition, POLICY, day(2)) == []
    assert [d.attempt for d in due_retries(partition, POLICY, day(3))] == [2]


def test_the_retry_id_differs_per_attempt_and_per_failure_episode() -> None:
    ids = {
        retry_settlement_id(ACCOUNT, "pm-card", FAILED_AT, 1),
        retry_settlement_id(ACCOUNT, "pm-card", FAILED_AT, 2),
        retry_settlement_id(ACCOUNT, "pm-card", day(40), 1),
        retry_settlement_id("acc-other", "pm-card", FAILED_AT, 1),
    }
    assert len(ids) == 4
    assert retry_settlement_id(ACCOUNT, "pm-card", FAILED_AT, 1) == retry_settlement_id(
        ACCOUNT, "pm-card", FAILED_AT, 1
    )


def test_a_retry_declined_hard_stops_the_retries() -> None:
    partition = account_with_failed_card()
    (due,) = due_retries(partition, POLICY, day(1))
    claimed = stage_retry_claim(partition, due, day(1))
    assert claimed is not None
    partition.put(claimed.decline("expired_card", day(1)))

    assert not may_retry(partition, partition.payment_methods[0])
    assert due_retries(partition, POLICY, day(30)) == []
    assert next_retry_at(partition, "sub-1", POLICY, day(1)) is None


def test_a_retry_declined_softly_leaves_the_next_attempt_scheduled() -> None:
    partition = account_with_failed_card()
    (due,) = due_retries(partition, POLICY, day(1))
    claimed = stage_retry_claim(partition, due, day(1))
    assert claimed is not None
    partition.put(claimed.decline("insufficient_funds", day(1)))

    assert next_retry_at(partition, "sub-1", POLICY, day(1)) == day(3)


def test_a_card_charge_in_flight_blocks_the_retry_claim() -> None:
    partition = account_with_failed_card()
    partition.put(
        Settlement(
            id="stl-portal",
            subscription_id="sub-1",
            failed_payment_method_id="pm-card",
            payment_method_id="pm-card",
            payment_method_kind=PaymentMethodKind.CARD,
            invoice_ids=("inv-1", "inv-2"),
            total=Money(minor=3000, currency="EUR"),
            created_at=day(1),
        )
    )
    (due,) = due_retries(partition, POLICY, day(1))

    assert stage_retry_claim(partition, due, day(1)) is None


def test_next_retry_at_walks_the_schedule() -> None:
    partition = account_with_failed_card()

    assert next_retry_at(partition, "sub-1", POLICY, FAILED_AT) == day(1)
    assert next_retry_at(partition, "sub-2", POLICY, day(1)) == day(3)
    assert next_retry_at(partition, "sub-1", POLICY, day(21)) is None
    assert next_retry_at(partition, "sub-unknown", POLICY, FAILED_AT) is None


def test_retry_milestones_join_the_timeline_only_for_a_retried_subscription() -> None:
    partition = account_with_failed_card()
    subscription = partition.subscriptions[0]

    with_retries = milestones(subscription, POLICY, retrying=True)
    without = milestones(subscription, POLICY)

    retries = [m for m in with_retries if m.kind is MilestoneKind.RETRY]
    assert [m.offset_days for m in retries] == list(POLICY.retry_days)
    assert [m.at for m in retries] == [day(d) for d in POLICY.retry_days]
    assert [m for m in with_retries if m.kind is not MilestoneKind.RETRY] == without
    assert next_review_at(partition.subscriptions, POLICY, FAILED_AT, retrying={"sub-1"}) == day(1)
    assert next_review_at(partition.subscriptions, POLICY, FAILED_AT) == day(POLICY.reminder_days[0])


def test_the_default_schedule_is_seven_retries_all_before_the_final_notice() -> None:
    warn_day = POLICY.grace_period_days - POLICY.warn_days_before_cancellation

    assert POLICY.retry_days == (1, 3, 5, 7, 10, 14, 21)
    assert POLICY.retry_days[-1] < warn_day


def test_the_default_schedule_keeps_only_the_days_before_a_shorter_final_notice() -> None:
    policy = RetentionPolicy(grace_period_days=12, warn_days_before_cancellation=2)

    assert policy.retry_days == (1, 3, 5, 7)


@pytest.mark.parametrize(
    ("days", "problem"),
    [
        ((1, 2, 3, 4, 5, 6, 7, 8, 9), "at most 8"),
        ((1, 3, 3), "strictly increasing"),
        ((5, 3), "strictly increasing"),
        ((0, 3), "at least 1 day"),
        ((1, 30), "before cancellation"),
    ],
)
def test_an_invalid_retry_schedule_is_refused(days: tuple[int, ...], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        RetentionPolicy(retry_days=days, grace_period_days=30)


def test_an_empty_retry_schedule_turns_retries_off() -> None:
    partition = account_with_failed_card()
    policy = RetentionPolicy(retry_days=())

    assert due_retries(partition, policy, day(29)) == []
    assert next_retry_at(partition, "sub-1", policy, FAILED_AT) is None


@pytest.mark.parametrize(
    ("locale", "headline", "attempt_word"),
    [
        ("en-US", "Payment collected automatically", "attempt 1"),
        ("nl-NL", "Betaling automatisch geïnd", "poging 1"),
        ("de-DE", "Zahlung automatisch eingezogen", "Versuch 1"),
    ],
)
def test_the_receipt_of_a_successful_retry_says_the_payment_was_collected_automatically(
    locale: str, headline: str, attempt_word: str
) -> None:
    partition = account_with_failed_card()
    assert partition.account is not None
    partition.set_account(partition.account.model_copy(update={"locale": locale}))
    (due,) = due_retries(partition, POLICY, day(1))
    claimed = stage_retry_claim(partition, due, day(1))
    assert claimed is not None

    stage_payment_success(
        partition, claimed, at=day(1), reason=TransitionReason.BALANCE_SETTLED, portal_base_url="https://portal.example"
    )

    (receipt,) = [n for n in partition.notifications if n.id == f"receipt-{claimed.id}"]
    assert receipt.template == RETRY_RECEIPT_TEMPLATE
    rendered = EmailRenderer().render(receipt.template, receipt.locale, receipt.context)
    assert rendered.subject.startswith(headline)
    for body in (rendered.plain_text, rendered.html):
        assert headline in body
        assert attempt_word in body
        assert "Workload 1" in body
        assert "Workload 2" in body

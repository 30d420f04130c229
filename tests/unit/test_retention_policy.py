"""The retention timeline as pure rules: which milestone falls when, what a late run skips, when data may go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import Subscription
from shared.domain.retention_policy import (
    MINIMUM_RETENTION_DAYS,
    MilestoneKind,
    RetentionPolicy,
    cancellation_date,
    deletion_allowed,
    deletion_date,
    due_milestones,
    milestones,
    next_review_at,
)
from shared.settings import Settings, retention_policy

FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
POLICY = RetentionPolicy()
M = MilestoneKind


def past_due(since: datetime = FAILED_AT) -> Subscription:
    enabled = Subscription(id="sub-1", name="Production", service="Virtual Machines", payment_method_id="pm-1")
    return enabled.transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, since)


def disabled(at: datetime) -> Subscription:
    return past_due().transition(SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, at)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def test_a_past_due_subscription_has_two_reminders_a_warning_and_a_cancellation_by_default() -> None:
    steps = milestones(past_due(), POLICY)

    assert [(m.kind, m.at - FAILED_AT, m.offset_days) for m in steps] == [
        (M.REMINDER, days(7), 7),
        (M.REMINDER, days(14), 14),
        (M.WARN, days(25), 5),
        (M.DISABLE, days(30), 0),
    ]
    assert cancellation_date(past_due(), POLICY) == FAILED_AT + days(30)


def test_a_disabled_subscription_has_three_deletion_warnings_and_the_deletion_ninety_days_later() -> None:
    disabled_at = FAILED_AT + days(30)

    steps = milestones(disabled(disabled_at), POLICY)

    assert [(m.kind, m.at - disabled_at, m.offset_days) for m in steps] == [
        (M.DELETION_WARNING, days(60), 30),
        (M.DELETION_WARNING, days(83), 7),
        (M.DELETION_WARNING, days(89), 1),
        (M.DELETE, days(90), 0),
    ]


@pytest.mark.parametrize("state", [SubscriptionState.ENABLED, SubscriptionState.DELETED])
def test_enabled_and_deleted_subscriptions_have_nothing_ahead(state: SubscriptionState) -> None:
    subscription = past_due().model_copy(update={"state": state})

    assert milestones(subscription, POLICY) == []
    assert next_review_at([subscription], POLICY, FAILED_AT) is None


def test_reminders_that_would_fall_on_or_after_the_warning_are_left_out() -> None:
    policy = RetentionPolicy(reminder_days=(3, 24, 25, 26), grace_period_days=30, warn_days_before_cancellation=5)

    reminders = [m.offset_days for m in milestones(past_due(), policy) if m.kind is M.REMINDER]

    assert reminders == [3, 24]


def test_deletion_warnings_longer_than_the_retention_period_are_left_out() -> None:
    policy = RetentionPolicy(deletion_warning_days=(120, 30))

    warnings = [m.offset_days for m in milestones(disabled(FAILED_AT), policy) if m.kind is M.DELETION_WARNING]

    assert warnings == [30]


def test_the_next_review_is_the_earliest_milestone_after_the_moment_across_subscriptions() -> None:
    later = past_due(FAILED_AT + days(3)).model_copy(update={"id": "sub-2"})

    assert next_review_at([past_due(), later], POLICY, FAILED_AT) == FAILED_AT + days(7)
    assert next_review_at([past_due(), later], POLICY, FAILED_AT + days(7)) == FAILED_AT + days(10)


def test_a_run_on_time_acts_on_the_one_milestone_that_fell_due() -> None:
    due = due_milestones(past_due(), POLICY, FAILED_AT + days(7) + timedelta(hours=16))

    assert [(m.kind, m.offset_days) for m in due.actionable] == [(M.REMINDER, 7)]
    assert due.superseded == ()


def test_a_late_run_sends_only_the_latest_reminder() -> None:
    due = due_milestones(past_due(), POLICY, FAILED_AT + days(20))

    assert [(m.kind, m.offset_days) for m in due.actionable] == [(M.REMINDER, 14)]
    assert [(m.kind, m.offset_days) for m in due.superseded] == [(M.REMINDER, 7)]


def test_a_run_after_the_cancellation_date_cancels_without_the_notices_it_missed() -> None:
    due = due_milestones(past_due(), POLICY, FAILED_AT + days(40))

    assert [m.kind for m in due.actionable] == [M.DISABLE]
    assert [m.kind for m in due.superseded] == [M.REMINDER, M.REMINDER, M.WARN]


def test_a_run_after_the_deletion_date_deletes_without_the_warnings_it_missed() -> None:
    due = due_milestones(disabled(FAILED_AT), POLICY, FAILED_AT + days(200))

    assert [m.kind for m in due.actionable] == [M.DELETE]
    assert [m.offset_days for m in due.superseded] == [30, 7, 1]


def test_the_policy_refuses_a_retention_period_below_the_minimum() -> None:
    with pytest.raises(ValueError, match="greater than or equal to 90"):
        RetentionPolicy(retention_days=30)


@given(retention_days=st.integers(min_value=-1000, max_value=1000), disabled_days=st.integers(0, 400))
def test_nothing_is_ever_deleted_before_ninety_days_after_the_cancellation(
    retention_days: int, disabled_days: int
) -> None:
    # model_construct skips validation: even a policy that slipped past it cannot shorten the retention.
    policy = RetentionPolicy.model_construct(retention_days=retention_days)
    disabled_at = FAILED_AT + days(disabled_days)
    subscription = disabled(disabled_at)

    delete_at = deletion_date(subscription, policy)

    assert delete_at is not None
    assert delete_at >= disabled_at + days(MINIMUM_RETENTION_DAYS)
    assert not deletion_allowed(subscription, disabled_at + days(MINIMUM_RETENTION_DAYS) - timedelta(seconds=1))
    assert deletion_allowed(subscription, disabled_at + days(MINIMUM_RETENTION_DAYS))
    for milestone in due_milestones(subscription, policy, disabled_at + days(MINIMUM_RETENTION_DAYS - 1)).actionable:
        assert milestone.kind is not M.DELETE


def test_only_a_disabled_subscription_may_be_deleted() -> None:
    later = FAILED_AT + days(365)

    assert not deletion_allowed(past_due(), later)
    assert deletion_allowed(disabled(FAILED_AT), later)
    assert not deletion_allowed(disabled(FAILED_AT).model_copy(update={"state": SubscriptionState.ENABLED}), later)


def test_the_settings_make_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDER_DAYS", "3, 10")
    monkeypatch.setenv("GRACE_PERIOD_DAYS", "21")
    monkeypatch.setenv("WARN_DAYS_BEFORE_CANCELLATION", "2")
    monkeypatch.setenv("DELETION_WARNING_DAYS", "14,1")
    monkeypatch.setenv("RETENTION_DAYS", "120")

    policy = retention_policy(Settings.load())

    assert policy == RetentionPolicy(
        reminder_days=(3, 10),
        grace_period_days=21,
        warn_days_before_cancellation=2,
        deletion_warning_days=(1, 14),
        retention_days=120,
    )

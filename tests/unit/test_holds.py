"""Collection holds as pure rules: what a hold pauses, how far a release moves each deadline, the 90-day floor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.audit import HoldAction
from shared.domain.holds import (
    EXPIRY_RELEASER,
    HoldOutcome,
    InvalidHoldError,
    is_held,
    place_hold,
    release_expired_hold,
    release_hold,
)
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import Account, Charge, Subscription
from shared.domain.money import Money
from shared.domain.partition import ACCOUNT_ROW, AccountPartition
from shared.domain.retention_plan import plan_account
from shared.domain.retention_policy import (
    MINIMUM_RETENTION_DAYS,
    MilestoneKind,
    RetentionPolicy,
    cancellation_date,
    deletion_allowed,
    deletion_date,
    earliest_deletion,
    milestones,
    next_review_at,
    projected_end_dates,
)
from shared.domain.settle_balance import AccountNotFoundError

FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
POLICY = RetentionPolicy()
PORTAL = "https://portal.contoso.example"


def days(n: float) -> timedelta:
    return timedelta(days=n)


def past_due(since: datetime = FAILED_AT, subscription_id: str = "sub-1") -> Subscription:
    enabled = Subscription(id=subscription_id, name="Production", service="VMs", payment_method_id="pm-1")
    return enabled.transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, since)


def disabled(at: datetime) -> Subscription:
    return past_due().transition(SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, at)


def stored_partition(*subscriptions: Subscription) -> AccountPartition:
    """A partition as read from storage: an account row with its ETag, and the given subscriptions."""
    account = Account(
        id="acc-1", admin_principal_id="admin-1", notification_email="a@contoso.example", locale="en-US", currency="EUR"
    )
    partition = AccountPartition(account_id="acc-1", account=account)
    partition.etags[ACCOUNT_ROW] = "etag-1"
    for subscription in subscriptions:
        partition.put(subscription)
        if subscription.state is not SubscriptionState.ENABLED:
            partition.put(
                Charge(
                    invoice_id=f"inv-{subscription.id}",
                    subscription_id=subscription.id,
                    service=subscription.service,
                    amount=Money(minor=1_000, currency="EUR"),
                    due_date=FAILED_AT.date(),
                    payment_method_id=subscription.payment_method_id,
                )
            )
    partition.mark_committed({})
    return partition


def subscription_of(partition: AccountPartition, subscription_id: str = "sub-1") -> Subscription:
    found = partition.get(Subscription, subscription_id)
    assert found is not None
    return found


def test_every_date_of_the_timeline_moves_by_the_subscriptions_deadline_shift() -> None:
    shift = days(10)
    plain, shifted = past_due(), past_due().model_copy(update={"deadline_shift": shift})

    assert cancellation_date(shifted, POLICY) == FAILED_AT + days(30) + shift
    assert [m.at - shift for m in milestones(shifted, POLICY)] == [m.at for m in milestones(plain, POLICY)]
    assert next_review_at([shifted], POLICY, FAILED_AT) == FAILED_AT + days(7) + shift
    assert projected_end_dates(shifted, POLICY) == (
        (FAILED_AT + days(40)).date(),
        (FAILED_AT + days(40 + MINIMUM_RETENTION_DAYS)).date(),
    )


def test_a_disabled_subscriptions_deletion_and_its_earliest_moment_both_move_so_ninety_days_stay_the_floor() -> None:
    disabled_at = FAILED_AT + days(30)
    held = disabled(disabled_at).model_copy(update={"deadline_shift": days(20)})
    short_policy_deletion = disabled_at + days(MINIMUM_RETENTION_DAYS + 20)

    assert earliest_deletion(held) == short_policy_deletion
    assert deletion_date(held, POLICY) == short_policy_deletion
    assert not deletion_allowed(held, disabled_at + days(MINIMUM_RETENTION_DAYS))
    assert deletion_allowed(held, short_policy_deletion)
    assert [m.kind for m in milestones(held, POLICY)][-1] is MilestoneKind.DELETE


def test_disabling_and_re_enabling_start_from_a_zero_shift() -> None:
    shifted = past_due().model_copy(update={"deadline_shift": days(10)})

    now_disabled = shifted.transition(SubscriptionState.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, FAILED_AT)
    enabled = shifted.transition(SubscriptionState.ENABLED, TransitionReason.BALANCE_SETTLED, FAILED_AT)

    assert (now_disabled.deadline_shift, enabled.deadline_shift) == (timedelta(0), timedelta(0))


def test_placing_a_hold_stages_it_on_the_account_with_a_set_record() -> None:
    partition = stored_partition(past_due())
    now = FAILED_AT + days(3)

    change = place_hold(partition, reason="Dispute DX-17", set_by="cli:alice", until=now + days(14), now=now)

    assert change.outcome is HoldOutcome.SET
    assert partition.account is not None
    assert partition.account.hold == change.hold
    assert change.hold is not None
    assert (change.hold.since, change.hold.until) == (now, now + days(14))
    assert change.record is not None
    assert (change.record.action, change.record.by, change.record.reason) == (
        HoldAction.SET,
        "cli:alice",
        "Dispute DX-17",
    )
    assert partition.has_changes


def test_holding_again_changes_reason_and_end_but_keeps_since() -> None:
    partition = stored_partition(past_due())
    first = FAILED_AT + days(1)
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=None, now=first)

    change = place_hold(
        partition, reason="Dispute, bank asked", set_by="ops-7", until=first + days(9), now=first + days(2)
    )

    assert change.outcome is HoldOutcome.CHANGED
    assert change.hold is not None
    assert (change.hold.since, change.hold.reason, change.hold.until) == (first, "Dispute, bank asked", first + days(9))
    assert change.record is not None
    assert change.record.action is HoldAction.CHANGED


def test_holding_again_with_the_same_terms_changes_nothing_and_records_nothing() -> None:
    partition = stored_partition(past_due())
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=None, now=FAILED_AT)
    partition.mark_committed({})

    change = place_hold(partition, reason="Dispute", set_by="cli:bob", until=None, now=FAILED_AT + days(1))

    assert (change.outcome, change.record, partition.has_changes) == (HoldOutcome.UNCHANGED, None, False)


def test_an_end_that_is_not_in_the_future_is_refused_naming_until() -> None:
    partition = stored_partition(past_due())

    with pytest.raises(InvalidHoldError) as refused:
        place_hold(partition, reason="Dispute", set_by="cli:alice", until=FAILED_AT, now=FAILED_AT)

    assert refused.value.field == "until"
    assert partition.account is not None
    assert partition.account.hold is None


def test_an_account_that_does_not_exist_cannot_be_held() -> None:
    with pytest.raises(AccountNotFoundError):
        place_hold(AccountPartition(account_id="acc-x"), reason="r", set_by="cli:a", until=None, now=FAILED_AT)


def test_releasing_moves_each_unpaid_subscription_by_the_time_it_was_held() -> None:
    held_at = FAILED_AT + days(5)
    later_failure = past_due(since=FAILED_AT + days(8), subscription_id="sub-2")
    enabled = Subscription(id="sub-3", name="Dev", service="VMs", payment_method_id="pm-1")
    partition = stored_partition(past_due(), later_failure, enabled)
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=None, now=held_at)

    change = release_hold(partition, released_by="cli:bob", now=held_at + days(10))

    assert change.outcome is HoldOutcome.RELEASED
    assert change.shifted == {"sub-1": days(10), "sub-2": days(7)}
    assert subscription_of(partition, "sub-1").deadline_shift == days(10)
    assert subscription_of(partition, "sub-3").deadline_shift == timedelta(0)
    assert cancellation_date(subscription_of(partition), POLICY) == FAILED_AT + days(40)
    assert partition.account is not None
    assert partition.account.hold is None
    assert change.record is not None
    assert (change.record.action, change.record.by) == (HoldAction.RELEASED, "cli:bob")


def test_two_holds_add_up() -> None:
    partition = stored_partition(past_due())
    for start in (FAILED_AT + days(1), FAILED_AT + days(10)):
        place_hold(partition, reason="Dispute", set_by="cli:alice", until=None, now=start)
        release_hold(partition, released_by="cli:alice", now=start + days(3))

    assert subscription_of(partition).deadline_shift == days(6)


def test_releasing_an_account_that_is_not_held_is_a_no_op() -> None:
    partition = stored_partition(past_due())

    change = release_hold(partition, released_by="cli:bob", now=FAILED_AT)

    assert (change.outcome, change.record, partition.has_changes) == (HoldOutcome.NOT_HELD, None, False)


def test_a_hold_past_its_end_counts_only_until_then_and_is_released_by_the_review() -> None:
    partition = stored_partition(past_due())
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=FAILED_AT + days(4), now=FAILED_AT)
    assert partition.account is not None

    assert is_held(partition.account, FAILED_AT + days(4) - timedelta(seconds=1))
    assert not is_held(partition.account, FAILED_AT + days(4))
    assert release_expired_hold(partition, FAILED_AT + days(3)) is None
    change = release_expired_hold(partition, FAILED_AT + days(6))

    assert change is not None
    assert change.record is not None
    assert (change.record.at, change.record.by) == (FAILED_AT + days(4), EXPIRY_RELEASER)
    assert subscription_of(partition).deadline_shift == days(4)


def test_an_explicit_release_after_the_end_passed_still_counts_only_until_the_end() -> None:
    partition = stored_partition(past_due())
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=FAILED_AT + days(4), now=FAILED_AT)

    change = release_hold(partition, released_by="cli:bob", now=FAILED_AT + days(9))

    assert subscription_of(partition).deadline_shift == days(4)
    assert change.record is not None
    assert change.record.by == EXPIRY_RELEASER


def test_while_held_the_plan_stages_nothing_and_reviews_again_at_the_end() -> None:
    until = FAILED_AT + days(60)
    partition = stored_partition(past_due())
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=until, now=FAILED_AT + days(1))
    partition.mark_committed({})

    plan = plan_account(partition, POLICY, FAILED_AT + days(45), portal_url=PORTAL)

    assert (plan.changed, plan.actions, plan.next_review) == (False, [], until)
    assert subscription_of(partition).state is SubscriptionState.PAST_DUE


def test_a_held_account_without_an_end_has_no_next_review() -> None:
    partition = stored_partition(past_due())
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=None, now=FAILED_AT + days(1))
    partition.mark_committed({})

    plan = plan_account(partition, POLICY, FAILED_AT + days(45), portal_url=PORTAL)

    assert (plan.changed, plan.next_review) == (False, None)


def test_the_plan_at_the_end_releases_the_hold_and_acts_on_the_moved_deadlines() -> None:
    held_at, until = FAILED_AT + days(20), FAILED_AT + days(30)
    partition = stored_partition(past_due())
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=until, now=held_at)
    partition.mark_committed({})

    plan = plan_account(partition, POLICY, until, portal_url=PORTAL)

    assert [r.action for r in plan.hold_records] == [HoldAction.RELEASED]
    assert partition.account is not None
    assert partition.account.hold is None
    # Held 10 days: the warning (day 25 + 10) and the cancellation (day 30 + 10) are still ahead.
    assert {a.milestone for a in plan.actions} == {MilestoneKind.REMINDER}
    assert subscription_of(partition).state is SubscriptionState.PAST_DUE
    assert plan.next_review == FAILED_AT + days(35)


def test_holding_an_account_whose_hold_ended_unreviewed_releases_that_one_first_and_starts_anew() -> None:
    partition = stored_partition(past_due())
    place_hold(partition, reason="Dispute", set_by="cli:alice", until=FAILED_AT + days(4), now=FAILED_AT)
    now = FAILED_AT + days(9)

    change = place_hold(partition, reason="Second dispute", set_by="cli:bob", until=None, now=now)

    assert [(r.action, r.at, r.by) for r in change.records] == [
        (HoldAction.RELEASED, FAILED_AT + days(4), EXPIRY_RELEASER),
        (HoldAction.SET, now, "cli:bob"),
    ]
    assert change.hold is not None
    assert change.hold.since == now
    assert subscription_of(partition).deadline_shift == days(4)

from __future__ import annotations

from datetime import UTC, datetime
from itertools import product

import pytest

from shared.domain.errors import InvalidTransitionError
from shared.domain.lifecycle import (
    ALLOWED_TRANSITIONS,
    SubscriptionState,
    TransitionReason,
    can_transition,
    is_usable,
)
from shared.domain.model import Subscription

S = SubscriptionState
AT = datetime(2026, 11, 24, 10, tzinfo=UTC)
EXPECTED_ALLOWED = {
    (S.ENABLED, S.PAST_DUE),
    (S.ENABLED, S.WARNED),
    (S.WARNED, S.PAST_DUE),
    (S.WARNED, S.DISABLED),
    (S.WARNED, S.ENABLED),
    (S.PAST_DUE, S.WARNED),
    (S.PAST_DUE, S.DISABLED),
    (S.PAST_DUE, S.ENABLED),
    (S.DISABLED, S.DELETED),
    (S.DISABLED, S.ENABLED),
}


def subscription_in(state: SubscriptionState) -> Subscription:
    return Subscription(id="sub-a", name="Production", service="Azure", payment_method_id="pm-1", state=state)


@pytest.mark.parametrize(("current", "target"), sorted(product(S, S)))
def test_every_transition_is_allowed_exactly_when_the_table_says_so(
    current: SubscriptionState, target: SubscriptionState
) -> None:
    subscription = subscription_in(current)
    if (current, target) in EXPECTED_ALLOWED:
        moved = subscription.transition(target, TransitionReason.PAYMENT_FAILED, AT)
        assert moved.state is target
        assert moved.history[-1].from_state is current
        assert moved.history[-1].to_state is target
        assert moved.history[-1].at == AT
    else:
        with pytest.raises(InvalidTransitionError, match=f"from {current} to {target}"):
            subscription.transition(target, TransitionReason.PAYMENT_FAILED, AT)
    assert can_transition(current, target) == ((current, target) in EXPECTED_ALLOWED)


def test_the_transition_table_names_every_state() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(S)
    assert ALLOWED_TRANSITIONS[S.DELETED] == frozenset()


def test_becoming_past_due_keeps_the_first_moment_it_happened() -> None:
    later = datetime(2026, 11, 30, tzinfo=UTC)
    past_due = subscription_in(S.ENABLED).transition(S.PAST_DUE, TransitionReason.PAYMENT_FAILED, AT)
    warned = past_due.transition(S.WARNED, TransitionReason.CANCELLATION_NEAR, later)
    again = warned.transition(S.PAST_DUE, TransitionReason.PAYMENT_FAILED, later)
    assert again.past_due_since == AT


def test_disabling_records_when_the_service_ended_and_reenabling_clears_it() -> None:
    disabled = subscription_in(S.PAST_DUE).transition(S.DISABLED, TransitionReason.GRACE_PERIOD_ENDED, AT)
    assert disabled.disabled_at == AT
    enabled = disabled.reenable(TransitionReason.BALANCE_SETTLED, AT)
    assert enabled.state is S.ENABLED
    assert enabled.disabled_at is None
    assert enabled.past_due_since is None


def test_a_deleted_subscription_cannot_be_reenabled_and_an_enabled_one_stays_as_it_is() -> None:
    with pytest.raises(InvalidTransitionError):
        subscription_in(S.DELETED).reenable(TransitionReason.BALANCE_SETTLED, AT)
    enabled = subscription_in(S.ENABLED)
    assert enabled.reenable(TransitionReason.BALANCE_SETTLED, AT) is enabled


def test_history_is_bounded_so_the_row_stays_small() -> None:
    subscription = subscription_in(S.ENABLED)
    for _ in range(40):
        subscription = subscription.transition(S.PAST_DUE, TransitionReason.PAYMENT_FAILED, AT)
        subscription = subscription.transition(S.ENABLED, TransitionReason.BALANCE_SETTLED, AT)
    assert len(subscription.history) == 50


def test_only_disabled_and_deleted_subscriptions_stop_their_resources() -> None:
    assert [state for state in S if not is_usable(state)] == [S.DISABLED, S.DELETED]

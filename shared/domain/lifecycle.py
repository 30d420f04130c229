"""The subscription lifecycle, after Azure's own subscription states, as one table of allowed transitions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.domain.errors import InvalidTransitionError


class SubscriptionState(StrEnum):
    ENABLED = "Enabled"
    WARNED = "Warned"
    PAST_DUE = "PastDue"
    DISABLED = "Disabled"
    DELETED = "Deleted"


class TransitionReason(StrEnum):
    PAYMENT_FAILED = "payment_failed"
    CANCELLATION_NEAR = "cancellation_near"
    GRACE_PERIOD_ENDED = "grace_period_ended"
    RETENTION_ENDED = "retention_ended"
    BALANCE_SETTLED = "balance_settled"
    PAYMENT_RECEIVED = "payment_received"
    SELF_HEALED = "self_healed"


_S = SubscriptionState
ALLOWED_TRANSITIONS: dict[SubscriptionState, frozenset[SubscriptionState]] = {
    _S.ENABLED: frozenset({_S.PAST_DUE, _S.WARNED}),
    _S.WARNED: frozenset({_S.PAST_DUE, _S.DISABLED, _S.ENABLED}),
    _S.PAST_DUE: frozenset({_S.WARNED, _S.DISABLED, _S.ENABLED}),
    _S.DISABLED: frozenset({_S.DELETED, _S.ENABLED}),
    _S.DELETED: frozenset(),
}


class StateTransition(BaseModel):
    model_config = ConfigDict(frozen=True)

    from_state: SubscriptionState
    to_state: SubscriptionState
    reason: TransitionReason
    at: datetime


def can_transition(current: SubscriptionState, target: SubscriptionState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def check_transition(current: SubscriptionState, target: SubscriptionState) -> None:
    if not can_transition(current, target):
        raise InvalidTransitionError(f"a subscription cannot go from {current} to {target}")


def is_usable(state: SubscriptionState) -> bool:
    """Whether the subscription's resources run (Azure: Disabled allows only reads and deletes)."""
    return state in {_S.ENABLED, _S.WARNED, _S.PAST_DUE}

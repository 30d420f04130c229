"""The dates of one subscription that the customer is shown, in one place: the overview, the portal and the emails.

Each comes from the timeline of shared/domain/retention_policy.py under the account's policy, so what is shown is
what the retention run will do: the warning while it is still to come (PastDue), the cancellation until it happens
(PastDue, Warned), the deletion from the moment the subscription is past due (projected from the cancellation) until
it happens. An Enabled or Deleted subscription has none. No I/O here.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Frozen, PaymentMethod, Subscription
from shared.domain.retention_policy import (
    MilestoneKind,
    RetentionPolicy,
    cancellation_date,
    milestones,
)

_UNPAID = frozenset({SubscriptionState.PAST_DUE, SubscriptionState.WARNED})


class SubscriptionDates(Frozen):
    next_retry: datetime | None = None
    warning: datetime | None = None
    cancellation: datetime | None = None
    deletion: datetime | None = None


def subscription_dates(
    subscription: Subscription, policy: RetentionPolicy, *, next_retry: datetime | None = None
) -> SubscriptionDates:
    """What lies ahead of `subscription` if nobody pays; `next_retry` is the retry schedule's answer (see
    `scheduled_retry`), passed in so that the dunning work decides it in one place."""
    timeline = milestones(subscription, policy)
    warning = next((m.at for m in timeline if m.kind is MilestoneKind.WARN), None)
    cancellation = next((m.at for m in timeline if m.kind is MilestoneKind.DISABLE), None)
    deletion = next((m.at for m in timeline if m.kind is MilestoneKind.DELETE), None)
    if deletion is None and cancellation is not None:
        deletion = policy.deletion_after(cancellation)
    unpaid = subscription.state in _UNPAID
    return SubscriptionDates(
        next_retry=next_retry if unpaid else None,
        warning=warning if subscription.state is SubscriptionState.PAST_DUE else None,
        cancellation=cancellation,
        deletion=deletion,
    )


def scheduled_retry(
    subscription: Subscription, method: PaymentMethod | None, policy: RetentionPolicy, now: datetime
) -> datetime | None:
    """The first of the policy's retry days after `now` and before the cancellation, if the failed method may be
    charged again (a gateway token, and a soft decline); None otherwise."""
    if subscription.state not in _UNPAID or subscription.past_due_since is None or method is None:
        return None
    if method.gateway_token is None or method.failed_reason is None or method.failed_reason.is_hard:
        return None
    cancel_at = cancellation_date(subscription, policy)
    for days in sorted(policy.retry_days):
        at = subscription.past_due_since + timedelta(days=days)
        if at > now and (cancel_at is None or at < cancel_at):
            return at
    return None

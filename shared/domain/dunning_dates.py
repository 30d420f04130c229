"""The dates of one subscription that the customer is shown, in one place: the overview, the portal and the emails.

Each comes from the timeline of shared/domain/retention_policy.py under the account's policy, so what is shown is
what the retention run will do: the warning while it is still to come (PastDue), the cancellation until it happens
(PastDue, Warned), the deletion from the moment the subscription is past due (projected from the cancellation) until
it happens. An Enabled or Deleted subscription has none. No I/O here.
"""

from __future__ import annotations

from datetime import datetime

from shared.domain.holds import is_held
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Frozen, Subscription
from shared.domain.partition import AccountPartition
from shared.domain.payment_retry import next_retry_at
from shared.domain.retention_policy import MilestoneKind, RetentionPolicy, milestones

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
    `account_subscription_dates`), passed in so that the retry schedule decides it in one place."""
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


def account_subscription_dates(
    partition: AccountPartition, subscription: Subscription, policy: RetentionPolicy, now: datetime
) -> SubscriptionDates:
    """The dates the overview, the portal and the emails show for one subscription of the account: its next
    automatic retry (none while the account is on hold) and the timeline's deadlines (moved by any hold)."""
    held = partition.account is not None and is_held(partition.account, now)
    next_retry = None if held else next_retry_at(partition, subscription.id, policy, now)
    return subscription_dates(subscription, policy, next_retry=next_retry)

"""The timeline of an unpaid subscription, in one place: reminders, warning, cancellation, deletion warnings, deletion.

Every step is a milestone at a fixed offset from when the subscription became past due or was disabled. Deletion
never comes before `MINIMUM_RETENTION_DAYS` after the service ended, whatever the settings say. Time spent under a
collection hold (`Subscription.deadline_shift`) moves every step of the timeline later by as much.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Self, TypeVar

from pydantic import Field, model_validator

from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Frozen, Subscription

MINIMUM_RETENTION_DAYS = 90
# Stripe's Smart Retries make up to 8 tries; card network rules allow at most 15 attempts in 30 days per card and
# forbid retrying a hard decline (shared/domain/payment_retry.py counts the attempts).
MAX_RETRY_ATTEMPTS = 8
DEFAULT_RETRY_DAYS = (1, 3, 5, 7, 10, 14, 21)
D = TypeVar("D", date, datetime)


class MilestoneKind(StrEnum):
    REMINDER = "reminder"
    WARN = "warn"
    DISABLE = "disable"
    DELETION_WARNING = "deletion_warning"
    DELETE = "delete"
    RETRY = "retry"


class RetentionPolicy(Frozen):
    reminder_days: tuple[int, ...] = (7, 14)
    warn_days_before_cancellation: int = 5
    grace_period_days: int = 30
    deletion_warning_days: tuple[int, ...] = (30, 7, 1)
    retention_days: int = Field(default=MINIMUM_RETENTION_DAYS, ge=MINIMUM_RETENTION_DAYS)
    # Days after the subscription became past due on which a soft-declined payment is tried again (dunning).
    retry_days: tuple[int, ...] = DEFAULT_RETRY_DAYS

    @model_validator(mode="before")
    @classmethod
    def _default_retries_fit_the_grace_period(cls, data: Any) -> Any:
        # The default schedule keeps only the days before the final notice of a shorter grace period; a schedule
        # given explicitly is checked as it is.
        if not isinstance(data, dict) or "retry_days" in data:
            return data
        grace = data.get("grace_period_days", cls.model_fields["grace_period_days"].default)
        warn = data.get("warn_days_before_cancellation", cls.model_fields["warn_days_before_cancellation"].default)
        return {**data, "retry_days": tuple(day for day in DEFAULT_RETRY_DAYS if day < int(grace) - int(warn))}

    @model_validator(mode="after")
    def _retry_schedule_is_valid(self) -> Self:
        days = self.retry_days
        if len(days) > MAX_RETRY_ATTEMPTS:
            raise ValueError(f"retry_days: at most {MAX_RETRY_ATTEMPTS} retries, got {len(days)}")
        if any(day < 1 for day in days):
            raise ValueError("retry_days: every retry is at least 1 day after the payment failed")
        if any(later <= earlier for earlier, later in itertools.pairwise(days)):
            raise ValueError("retry_days: the days must be strictly increasing")
        if days and days[-1] >= self.grace_period_days:
            raise ValueError(
                f"retry_days: every retry must come before cancellation (day {self.grace_period_days}), "
                f"got day {days[-1]}"
            )
        return self

    @property
    def effective_retention_days(self) -> int:
        return max(self.retention_days, MINIMUM_RETENTION_DAYS)

    def deletion_after(self, service_ended: D) -> D:
        """When data is deleted after the service ended at `service_ended` (never before the 90-day minimum)."""
        return service_ended + timedelta(days=self.effective_retention_days)


class Milestone(Frozen):
    kind: MilestoneKind
    at: datetime
    # Days before (warnings) or after (reminders) the reference moment; part of the milestone's identity.
    offset_days: int = 0


class DueMilestones(Frozen):
    """What a run at one moment must do for one subscription, and what it skips because a later step covers it."""

    actionable: tuple[Milestone, ...] = ()
    superseded: tuple[Milestone, ...] = ()


# A due milestone of one of these kinds makes earlier due notices of the listed kinds pointless.
_SUPERSEDES: dict[MilestoneKind, frozenset[MilestoneKind]] = {
    MilestoneKind.WARN: frozenset({MilestoneKind.REMINDER}),
    MilestoneKind.DISABLE: frozenset({MilestoneKind.REMINDER, MilestoneKind.WARN}),
    MilestoneKind.DELETE: frozenset({MilestoneKind.DELETION_WARNING}),
}
_REPEATED_NOTICES = frozenset({MilestoneKind.REMINDER, MilestoneKind.DELETION_WARNING})


def cancellation_date(subscription: Subscription, policy: RetentionPolicy) -> datetime | None:
    if subscription.past_due_since is None:
        return None
    return subscription.past_due_since + timedelta(days=policy.grace_period_days) + subscription.deadline_shift


def earliest_deletion(subscription: Subscription) -> datetime | None:
    """The first moment the data may go, whatever the policy: the service ended `MINIMUM_RETENTION_DAYS` ago, plus
    the time it was held (a hold never shortens the minimum)."""
    if subscription.disabled_at is None:
        return None
    return subscription.disabled_at + timedelta(days=MINIMUM_RETENTION_DAYS) + subscription.deadline_shift


def deletion_date(subscription: Subscription, policy: RetentionPolicy) -> datetime | None:
    if subscription.disabled_at is None:
        return None
    return policy.deletion_after(subscription.disabled_at) + subscription.deadline_shift


def projected_end_dates(subscription: Subscription, policy: RetentionPolicy) -> tuple[date | None, date | None]:
    """If nobody pays: the day the service ends (None once it has) and the day its data is deleted after that."""
    if subscription.state is SubscriptionState.DISABLED:
        deleted_at = deletion_date(subscription, policy)
        return None, deleted_at.date() if deleted_at else None
    cancel_at = cancellation_date(subscription, policy)
    if cancel_at is None:
        return None, None
    return cancel_at.date(), policy.deletion_after(cancel_at).date()


def deletion_allowed(subscription: Subscription, now: datetime) -> bool:
    """The last guard before deleting: disabled, and disabled at least `MINIMUM_RETENTION_DAYS` ago."""
    earliest = earliest_deletion(subscription)
    return subscription.state is SubscriptionState.DISABLED and earliest is not None and now >= earliest


def retry_milestones(subscription: Subscription, policy: RetentionPolicy) -> list[Milestone]:
    """When the failed payment of a past-due subscription is tried again (if its method may be retried at all)."""
    since = subscription.past_due_since
    if subscription.state not in {SubscriptionState.PAST_DUE, SubscriptionState.WARNED} or since is None:
        return []
    return [
        Milestone(kind=MilestoneKind.RETRY, at=since + timedelta(days=days), offset_days=days)
        for days in policy.retry_days
    ]


def milestones(subscription: Subscription, policy: RetentionPolicy, *, retrying: bool = False) -> list[Milestone]:
    """Every step still ahead of or behind this subscription in its current state, in time order; with `retrying`
    (its failed payment may be retried), the retries too."""
    state = subscription.state
    steps: list[Milestone] = retry_milestones(subscription, policy) if retrying else []
    cancel_at = cancellation_date(subscription, policy)
    if state in {SubscriptionState.PAST_DUE, SubscriptionState.WARNED} and cancel_at and subscription.past_due_since:
        since = subscription.past_due_since + subscription.deadline_shift
        steps += [
            Milestone(kind=MilestoneKind.REMINDER, at=since + timedelta(days=days), offset_days=days)
            for days in policy.reminder_days
            if days < policy.grace_period_days - policy.warn_days_before_cancellation
        ]
        warn_at = cancel_at - timedelta(days=policy.warn_days_before_cancellation)
        steps.append(Milestone(kind=MilestoneKind.WARN, at=warn_at, offset_days=policy.warn_days_before_cancellation))
        steps.append(Milestone(kind=MilestoneKind.DISABLE, at=cancel_at))
    delete_at = deletion_date(subscription, policy)
    if state is SubscriptionState.DISABLED and delete_at:
        steps += [
            Milestone(kind=MilestoneKind.DELETION_WARNING, at=delete_at - timedelta(days=days), offset_days=days)
            for days in policy.deletion_warning_days
            if days < policy.effective_retention_days
        ]
        steps.append(Milestone(kind=MilestoneKind.DELETE, at=delete_at))
    return sorted(steps, key=lambda milestone: milestone.at)


def due_milestones(subscription: Subscription, policy: RetentionPolicy, now: datetime) -> DueMilestones:
    """The milestones due at `now`, minus the notices a later due one makes pointless (a late run catching up).

    Of the reminders (and of the deletion warnings) only the latest due one counts; a due warning or cancellation
    covers the reminders, a due cancellation covers the warning, a due deletion covers the deletion warnings.
    """
    due = [milestone for milestone in milestones(subscription, policy) if milestone.at <= now]
    covered = {kind for milestone in due for kind in _SUPERSEDES.get(milestone.kind, frozenset())}
    latest_notice = {milestone.kind: milestone for milestone in due if milestone.kind in _REPEATED_NOTICES}
    actionable: list[Milestone] = []
    superseded: list[Milestone] = []
    for milestone in due:
        stale = milestone.kind in _REPEATED_NOTICES and latest_notice[milestone.kind] is not milestone
        (superseded if stale or milestone.kind in covered else actionable).append(milestone)
    return DueMilestones(actionable=tuple(actionable), superseded=tuple(superseded))


def next_review_at(
    subscriptions: Iterable[Subscription],
    policy: RetentionPolicy,
    after: datetime,
    *,
    retrying: Collection[str] = frozenset(),
) -> datetime | None:
    """The earliest milestone after `after` across an account's subscriptions: when the timer must look again.

    `retrying` names the subscriptions whose failed payment may still be retried: their retries count too."""
    upcoming = [m.at for s in subscriptions for m in milestones(s, policy, retrying=s.id in retrying) if m.at > after]
    return min(upcoming) if upcoming else None

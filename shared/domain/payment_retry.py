"""Automatic retries of a failed card payment, decided: which declines may be retried, when, and what one charges.

Only a soft decline is retried (the card network rules forbid retrying a hard one, and allow at most 15 attempts in
30 days for the rest), only with the gateway token the billing engine sent, and only on the days of the policy's
`retry_days` after the payment failed. A retry charges the whole balance of the failed method (the settle-balance
rule) and is recorded as a settlement with its attempt number, whose id is the gateway's idempotency key: the same
attempt can never charge twice, and a pending one blocks a portal settlement of the same charges (and the other way
round). A retry that comes back hard stops the retries. No I/O here.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain.holds import is_held
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import DeclineReason, Frozen, PaymentMethod, PaymentMethodKind, PaymentMethodStatus
from shared.domain.money import Money
from shared.domain.partition import AccountPartition
from shared.domain.payments import INVALID_TOKEN
from shared.domain.retention_policy import RetentionPolicy
from shared.domain.settle_balance import pending_settlements
from shared.domain.settlement import Settlement, SettlementStatus, failed_method_of, settlement_scope

RETRYABLE_DECLINES = frozenset(
    {
        DeclineReason.INSUFFICIENT_FUNDS,
        DeclineReason.DO_NOT_HONOR,
        DeclineReason.PROCESSING_ERROR,
        DeclineReason.CARD_DECLINED,
    }
)
# The card networks' limit for a soft-declined card; the failed charge itself is the first of them.
NETWORK_ATTEMPT_LIMIT = 15
NETWORK_ATTEMPT_WINDOW = timedelta(days=30)
_HARD_GATEWAY_REASONS = frozenset({INVALID_TOKEN})


class DeclineClass(StrEnum):
    SOFT = "soft"  # may succeed later (funds, a temporary refusal): retried
    HARD = "hard"  # will not succeed with this method: never retried


class RetryOutcome(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"


def decline_class(reason: str | None) -> DeclineClass:
    """A decline reason, as the event or the gateway states it, read as soft or hard."""
    if reason in _HARD_GATEWAY_REASONS:
        return DeclineClass.HARD
    known = next((member for member in DeclineReason if member.value == reason), None)
    return DeclineClass.HARD if known is not None and known.is_hard else DeclineClass.SOFT


class RetryAttempt(Frozen):
    """One automatic retry and its outcome, as the overview and the operator see it."""

    settlement_id: str
    payment_method_id: str
    attempt: int
    at: datetime
    amount: Money
    outcome: RetryOutcome
    decline_reason: str | None = None
    decline_class: DeclineClass | None = None


class DueRetry(Frozen):
    """The retry a run must make now for one failed method: its attempt number and the episode it belongs to."""

    payment_method_id: str
    attempt: int
    episode_start: datetime
    subscription_id: str


def retry_settlement_id(account_id: str, payment_method_id: str, episode_start: datetime, attempt: int) -> str:
    """Deterministic per account, failed method, failure episode and attempt: also the gateway's idempotency key."""
    cause = f"{account_id}\n{payment_method_id}\n{episode_start.isoformat()}\n{attempt}"
    return "rty-" + hashlib.sha256(cause.encode()).hexdigest()[:32]


def retry_attempts(partition: AccountPartition, payment_method_id: str | None = None) -> list[RetryAttempt]:
    """Every recorded retry (of one failed method, if named), oldest first."""
    found = [
        s
        for s in partition.all(Settlement)
        if s.retry_attempt is not None and payment_method_id in (None, s.failed_payment_method_id)
    ]
    return [_attempt_of(s) for s in sorted(found, key=lambda s: (s.created_at, s.id))]


def _attempt_of(settlement: Settlement) -> RetryAttempt:
    assert settlement.retry_attempt is not None
    outcome = {
        SettlementStatus.PENDING: RetryOutcome.PENDING,
        SettlementStatus.SUCCEEDED: RetryOutcome.APPROVED,
        SettlementStatus.DECLINED: RetryOutcome.DECLINED,
    }[settlement.status]
    declined = outcome is RetryOutcome.DECLINED
    return RetryAttempt(
        settlement_id=settlement.id,
        payment_method_id=settlement.failed_payment_method_id,
        attempt=settlement.retry_attempt,
        at=settlement.created_at,
        amount=settlement.total,
        outcome=outcome,
        decline_reason=settlement.reason if declined else None,
        decline_class=decline_class(settlement.reason) if declined else None,
    )


def episode_start(partition: AccountPartition, payment_method_id: str) -> datetime | None:
    """When the balance on this method went unpaid: the earliest past-due moment of the subscriptions owing on it."""
    starts = [
        s.past_due_since
        for s in partition.subscriptions
        if s.state in {SubscriptionState.PAST_DUE, SubscriptionState.WARNED}
        and s.past_due_since is not None
        and failed_method_of(s, partition.charges) == payment_method_id
    ]
    return min(starts) if starts else None


def _episode_attempts(partition: AccountPartition, method_id: str, start: datetime) -> list[Settlement]:
    return [
        s
        for s in partition.all(Settlement)
        if s.retry_attempt is not None and s.failed_payment_method_id == method_id and s.created_at >= start
    ]


def may_retry(partition: AccountPartition, method: PaymentMethod) -> bool:
    """A failed card whose payment.failed named its token, declined softly, not declined hard by a retry since."""
    if (
        method.kind is not PaymentMethodKind.CARD
        or method.status is not PaymentMethodStatus.FAILED
        or not method.gateway_token
        or not method.auto_retry
        or method.failed_reason not in RETRYABLE_DECLINES
    ):
        return False
    start = episode_start(partition, method.id)
    if start is None:
        return False
    return not any(
        s.status is SettlementStatus.DECLINED and decline_class(s.reason) is DeclineClass.HARD
        for s in _episode_attempts(partition, method.id, start)
    )


def retrying_subscription_ids(partition: AccountPartition) -> frozenset[str]:
    """The subscriptions whose failed payment may still be retried (their retry days join their timeline)."""
    methods = {m.id for m in partition.payment_methods if may_retry(partition, m)}
    return frozenset(s.id for s in partition.subscriptions if failed_method_of(s, partition.charges) in methods)


def due_retries(partition: AccountPartition, policy: RetentionPolicy, now: datetime) -> list[DueRetry]:
    """Per failed method, the latest retry due at `now` that was not made yet (a late run makes one, not several);
    none once the cancellation is due: a run that comes that late cancels, as it would have on time; none while the
    account is on a collection hold."""
    if partition.account is not None and is_held(partition.account, now):
        return []
    due: list[DueRetry] = []
    for method in sorted(partition.payment_methods, key=lambda m: m.id):
        if not may_retry(partition, method):
            continue
        start = episode_start(partition, method.id)
        assert start is not None
        made = _episode_attempts(partition, method.id, start)
        last_made = max((s.retry_attempt or 0 for s in made), default=0)
        owing = _first_owing_subscription(partition, method.id)
        reached = [
            n for n, milestone in enumerate(_schedule(policy, start), start=1) if milestone <= now and n > last_made
        ]
        cancellation_due = now >= start + timedelta(days=policy.grace_period_days)
        if not reached or owing is None or cancellation_due or not _within_network_limit(partition, method.id, now):
            continue
        due.append(
            DueRetry(payment_method_id=method.id, attempt=reached[-1], episode_start=start, subscription_id=owing)
        )
    return due


def _schedule(policy: RetentionPolicy, start: datetime) -> list[datetime]:
    return [start + timedelta(days=day) for day in policy.retry_days]


def _within_network_limit(partition: AccountPartition, method_id: str, now: datetime) -> bool:
    """Room for one more attempt on this card: its retries of the last 30 days (of any failure, a recovered one
    included) plus the failed charge itself stay below the networks' 15."""
    recent = [
        s
        for s in partition.all(Settlement)
        if s.retry_attempt is not None
        and s.failed_payment_method_id == method_id
        and now - s.created_at < NETWORK_ATTEMPT_WINDOW
    ]
    return len(recent) + 1 < NETWORK_ATTEMPT_LIMIT


def _first_owing_subscription(partition: AccountPartition, method_id: str) -> str | None:
    owing = sorted(
        s.id
        for s in partition.subscriptions
        if s.state is not SubscriptionState.DELETED and failed_method_of(s, partition.charges) == method_id
    )
    return owing[0] if owing else None


def next_retry_at(
    partition: AccountPartition, subscription_id: str, policy: RetentionPolicy, after: datetime
) -> datetime | None:
    """The next automatic retry that would charge this subscription's balance after `after`, if any will."""
    subscription = next((s for s in partition.subscriptions if s.id == subscription_id), None)
    if subscription is None or subscription_id not in retrying_subscription_ids(partition):
        return None
    method_id = failed_method_of(subscription, partition.charges)
    start = episode_start(partition, method_id) if method_id else None
    if start is None or method_id is None:
        return None
    made = max((s.retry_attempt or 0 for s in _episode_attempts(partition, method_id, start)), default=0)
    upcoming = [at for n, at in enumerate(_schedule(policy, start), start=1) if n > made and at > after]
    return upcoming[0] if upcoming else None


def stage_retry_claim(partition: AccountPartition, due: DueRetry, now: datetime) -> Settlement | None:
    """Stage the pending settlement of this retry; None when a charge of these charges is already in flight."""
    account = partition.account
    subscription = next((s for s in partition.subscriptions if s.id == due.subscription_id), None)
    if account is None or subscription is None:
        return None
    scope = settlement_scope(subscription, partition.charges, account.currency)
    pending = pending_settlements(partition, scope.invoice_ids)
    if any(s.payment_method_kind is PaymentMethodKind.CARD for s in pending):
        return None
    settlement = Settlement(
        id=retry_settlement_id(account.id, due.payment_method_id, due.episode_start, due.attempt),
        subscription_id=subscription.id,
        failed_payment_method_id=scope.failed_payment_method_id,
        payment_method_id=scope.failed_payment_method_id,
        payment_method_kind=PaymentMethodKind.CARD,
        invoice_ids=scope.invoice_ids,
        total=scope.total,
        created_at=now,
        retry_attempt=due.attempt,
    )
    if partition.get(Settlement, settlement.id) is not None:
        return None
    partition.put(settlement)
    return settlement


__all__ = [
    "NETWORK_ATTEMPT_LIMIT",
    "RETRYABLE_DECLINES",
    "DeclineClass",
    "DueRetry",
    "RetryAttempt",
    "RetryOutcome",
    "decline_class",
    "due_retries",
    "may_retry",
    "next_retry_at",
    "retry_attempts",
    "retry_settlement_id",
    "retrying_subscription_ids",
    "stage_retry_claim",
]

"""Collection holds: support pauses an account's past-due lifecycle, and every pending deadline waits as long.

A hold is a field of the account row (`Account.hold`), so placing or releasing one commits with the account's ETag
like every other change. While it lasts, the retention plan does nothing to the account's milestones (see
retention_plan.py); payments still settle. Releasing adds the time held to each unpaid subscription's
`deadline_shift`, which every date of the timeline includes (retention_policy.py). A hold with `until` is released by
the first review at or after that moment, as if released exactly then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from shared.domain.audit import HoldAction, HoldRecord
from shared.domain.errors import DomainError
from shared.domain.model import Account, CollectionHold, Subscription
from shared.domain.partition import AccountPartition
from shared.domain.settle_balance import AccountNotFoundError

# Who releases a hold whose `until` has passed.
EXPIRY_RELEASER = "system:hold-expired"


class InvalidHoldError(DomainError):
    """A hold that cannot be placed as asked; `field` names the request field at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


class HoldOutcome(StrEnum):
    SET = "set"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    RELEASED = "released"
    NOT_HELD = "not_held"


@dataclass(frozen=True)
class HoldChange:
    """What placing or releasing did: the hold as it is now (None once released), and the audit record to keep."""

    outcome: HoldOutcome
    hold: CollectionHold | None
    # Oldest first: a hold placed on one whose end passed unreviewed first records that one's release.
    records: tuple[HoldRecord, ...] = ()
    # Per subscription id: how much later its deadlines now fall (a release only).
    shifted: dict[str, timedelta] | None = None

    @property
    def record(self) -> HoldRecord | None:
        """The record of this change itself."""
        return self.records[-1] if self.records else None


def is_held(account: Account, now: datetime) -> bool:
    """Whether collection is paused at `now` (a hold past its `until` no longer counts, released or not yet)."""
    return account.hold is not None and not account.hold.expired(now)


def place_hold(
    partition: AccountPartition, *, reason: str, set_by: str, until: datetime | None, now: datetime
) -> HoldChange:
    """Hold the account, or change the reason and end of its hold (it keeps its `since`); stages the account row."""
    account = _account(partition)
    if until is not None and until <= now:
        raise InvalidHoldError("until must be in the future", field="until")
    current = account.hold
    earlier: tuple[HoldRecord, ...] = ()
    if current is not None and current.expired(now):
        # Its end passed before any review released it: release it first, then this is a new hold.
        earlier = release_hold(partition, released_by=EXPIRY_RELEASER, now=now).records
        account = _account(partition)
        current = None
    if current is not None and (current.reason, current.until) == (reason, until):
        return HoldChange(HoldOutcome.UNCHANGED, current)
    hold = CollectionHold(reason=reason, set_by=set_by, since=current.since if current else now, until=until)
    partition.set_account(account.model_copy(update={"hold": hold}))
    action = HoldAction.CHANGED if current else HoldAction.SET
    record = _record(account.id, action, at=now, by=set_by, hold=hold)
    return HoldChange(HoldOutcome(action.value), hold, (*earlier, record))


def release_hold(partition: AccountPartition, *, released_by: str, now: datetime) -> HoldChange:
    """End the hold: each unpaid subscription's deadlines move later by the time it was held; stages the rows."""
    account = _account(partition)
    hold = account.hold
    if hold is None:
        return HoldChange(HoldOutcome.NOT_HELD, None)
    released_at = hold.ends_at(now)
    shifted: dict[str, timedelta] = {}
    for subscription in partition.subscriptions:
        held = subscription.held_for(hold, released_at)
        if held > timedelta(0):
            partition.put(_shift(subscription, held))
            shifted[subscription.id] = held
    partition.set_account(account.model_copy(update={"hold": None}))
    by = EXPIRY_RELEASER if hold.expired(now) else released_by
    record = _record(account.id, HoldAction.RELEASED, at=released_at, by=by, hold=hold)
    return HoldChange(HoldOutcome.RELEASED, None, (record,), shifted)


def release_expired_hold(partition: AccountPartition, now: datetime) -> HoldChange | None:
    """The review's part: a hold whose `until` is at or before `now` is released as of `until`."""
    account = partition.account
    if account is None or account.hold is None or not account.hold.expired(now):
        return None
    return release_hold(partition, released_by=EXPIRY_RELEASER, now=now)


def _shift(subscription: Subscription, held: timedelta) -> Subscription:
    return subscription.model_copy(update={"deadline_shift": subscription.deadline_shift + held})


def _record(account_id: str, action: HoldAction, *, at: datetime, by: str, hold: CollectionHold) -> HoldRecord:
    return HoldRecord(
        account_id=account_id, action=action, at=at, by=by, reason=hold.reason, since=hold.since, until=hold.until
    )


def _account(partition: AccountPartition) -> Account:
    if partition.account is None or not partition.exists:
        raise AccountNotFoundError("no such account")
    return partition.account

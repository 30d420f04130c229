"""Support's collection holds: place one (or change its reason and end) and release it; the rules are in
shared/domain/holds.py.

Each call reads the account, decides, writes the audit record (keyed by account, moment and action, so a retry after
a lost race writes it once) and the due entry the change needs, then commits; a lost race reads and decides again.
The reason is never logged: it is support's free text.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.domain.clock import Clock
from shared.domain.holds import HoldChange, HoldOutcome, place_hold, release_hold
from shared.domain.partition import AccountPartition
from shared.services.ports import AccountUnitOfWork, AuditLog, DueIndex
from shared.services.unit_of_work import with_fresh_partition

log = logging.getLogger(__name__)


def hold_account(
    account_id: str,
    *,
    reason: str,
    set_by: str,
    until: datetime | None,
    accounts: AccountUnitOfWork,
    audit: AuditLog,
    due: DueIndex,
    clock: Clock,
) -> HoldChange:
    """Hold the account's collection until released (or `until`); holding it again changes reason and end only."""
    now = clock.now()

    def change(partition: AccountPartition) -> HoldChange:
        result = place_hold(partition, reason=reason, set_by=set_by, until=until, now=now)
        _record(result, audit)
        if result.hold is not None and result.hold.until is not None:
            due.schedule(account_id, result.hold.until)  # the review at `until` releases it
        return result

    result = with_fresh_partition(accounts, account_id, change)
    log.info("hold on account %s by %s: %s", account_id, set_by, result.outcome.value)
    return result


def release_account(
    account_id: str, *, released_by: str, accounts: AccountUnitOfWork, audit: AuditLog, due: DueIndex, clock: Clock
) -> HoldChange:
    """End the account's hold; its pending deadlines move later by the time held. Not held: NOT_HELD, no change."""
    now = clock.now()

    def change(partition: AccountPartition) -> HoldChange:
        result = release_hold(partition, released_by=released_by, now=now)
        _record(result, audit)
        if result.outcome is HoldOutcome.RELEASED:
            due.schedule(account_id, now)  # the next timer run reviews the account with its moved deadlines
        return result

    result = with_fresh_partition(accounts, account_id, change)
    log.info("hold on account %s released by %s: %s", account_id, released_by, result.outcome.value)
    return result


def _record(result: HoldChange, audit: AuditLog) -> None:
    # Written before the commit, as the deletion records are: the record of a change exists before the change.
    for record in result.records:
        audit.record_hold(record)

"""Automatic retries: charge the due retry of each soft-declined card once, and complete it as a settlement.

The decisions (which method, which attempt, what it covers) are in shared/domain/payment_retry.py. Here, per due
retry: commit the pending settlement of the attempt (its id is the gateway's idempotency key) guarded by the
account's root-row ETag, so of a retry and a portal settlement of the same charges only the one that commits its
claim first charges; the other sees the claim (a retry skips, the portal request is told a payment is in progress).
Then charge, and record the answer exactly as a settlement does: success through payment_completion.py, a decline
on the attempt's record. A crash between claim and answer leaves a pending card settlement that the retention run
reconciles from the gateway's record, as it does for the portal's.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shared.domain.errors import ConcurrencyError
from shared.domain.partition import AccountPartition
from shared.domain.payment_retry import due_retries, stage_retry_claim
from shared.domain.retention_policy import RetentionPolicy
from shared.domain.settle_balance import PENDING_CHARGE_EXPIRY, card_token_of
from shared.domain.settlement import Settlement
from shared.services.ports import DueEntry
from shared.services.settle_balance import Payments, record_charge_result

log = logging.getLogger(__name__)
# Retries claimed per review (one per failed method), lost races included.
_CLAIM_ROUNDS = 8


def retry_due_payments(
    payments: Payments, partition: AccountPartition, policy: RetentionPolicy, *, now: datetime, dry_run: bool = False
) -> AccountPartition:
    """Make every retry due at `now` on the account (none in a dry run); returns the partition to go on with."""
    if dry_run or not due_retries(partition, policy, now):
        return partition
    account_id = partition.account_id
    for _ in range(_CLAIM_ROUNDS):
        try:
            claimed = _claim(payments, partition, policy, now)
        except ConcurrencyError:
            partition = payments.accounts.load(account_id)
            continue
        if claimed is None:
            break
        settlement, in_flight = claimed
        token = card_token_of(partition, settlement)
        result = payments.gateway.charge(settlement.total, token, settlement.id, account_id=account_id)
        outcome = record_charge_result(payments, account_id, settlement, result, known=partition, safety_net=in_flight)
        log.info("retry %s of account %s: %s", settlement.retry_attempt, account_id, outcome.status)
        partition = payments.accounts.load(account_id)
    return partition


def _claim(
    payments: Payments, partition: AccountPartition, policy: RetentionPolicy, now: datetime
) -> tuple[Settlement, DueEntry] | None:
    """Commit the first due retry's pending settlement; None when nothing (more) is due or a charge is in flight.
    Raises ConcurrencyError when someone wrote the account since it was read (the caller reads it again)."""
    for due in due_retries(partition, policy, now):
        settlement = stage_retry_claim(partition, due, payments.clock.now())
        if settlement is None:
            continue
        # The charge's safety net, removed once its outcome is recorded (and the receipt went out).
        in_flight = payments.due.schedule(partition.account_id, payments.clock.now() + PENDING_CHARGE_EXPIRY)
        payments.accounts.commit(partition)
        return settlement, in_flight
    return None

"""`payment.failed`: apply the event's decisions (shared/domain/payment_failure.py) once, then deliver the email.

The next milestone's due-index entry goes in before the commit, and so does the audit record of a snapshot that
disagreed with the account; email delivery comes after the commit. No safety-net entry: if the process dies
between the commit and the delivery, the queue delivers the message again, and the replay (a duplicate) delivers
what the first attempt committed.
"""

from __future__ import annotations

import logging

from shared.domain.audit import SnapshotDisagreement
from shared.domain.clock import Clock
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import PAYMENT_FAILED, PaymentFailedEvent
from shared.domain.payment_failure import (
    PaymentFailedOutcome,
    PaymentFailedResult,
    event_payload_hash,
    stage_payment_failed,
)
from shared.domain.payment_retry import retrying_subscription_ids
from shared.domain.retention_policy import next_review_at
from shared.services.delivery import Outbox, deliver
from shared.services.ports import AccountUnitOfWork, AuditLog, DueIndex
from shared.services.unit_of_work import with_fresh_partition

log = logging.getLogger(__name__)


def apply_payment_failed(
    event: PaymentFailedEvent,
    *,
    accounts: AccountUnitOfWork,
    due: DueIndex,
    audit: AuditLog,
    outbox: Outbox,
    clock: Clock,
    policies: DunningPolicies,
    portal_base_url: str,
) -> PaymentFailedResult:
    """Apply one `payment.failed` event exactly once in effect, then deliver the email it recorded."""
    account_id = event.data.account.id
    now = clock.now()
    payload_hash = event_payload_hash(event)
    latest: list[AccountPartition] = []

    def change(partition: AccountPartition) -> PaymentFailedResult:
        latest[:] = [partition]
        result = stage_payment_failed(
            partition, event, payload_hash=payload_hash, now=now, policies=policies, portal_base_url=portal_base_url
        )
        if result.disagreeing_fields:
            audit.record_snapshot_disagreement(
                SnapshotDisagreement(
                    account_id=account_id,
                    event_id=event.id,
                    event_type=PAYMENT_FAILED,
                    fields=result.disagreeing_fields,
                    recorded_at=now,
                )
            )
        if result.outcome is PaymentFailedOutcome.APPLIED:
            policy = policies.for_account(partition.account)
            retrying = retrying_subscription_ids(partition)
            review_at = next_review_at(partition.subscriptions, policy, now, retrying=retrying)
            if review_at is not None:
                due.schedule(account_id, review_at)
        return result

    result = with_fresh_partition(accounts, account_id, change)
    _log_outcome(result)
    report = deliver(outbox, account_id, latest[-1])
    return result.model_copy(update={"emails_sent": tuple(report.sent)})


def _log_outcome(result: PaymentFailedResult) -> None:
    if result.disagreeing_fields:
        # Ids and field names only: the values may be personal, and they are in the rejected snapshot anyway.
        log.warning(
            "payment.failed %s for account %s: its account snapshot disagrees on %s; kept the account's, audited",
            result.event_id,
            result.account_id,
            ", ".join(result.disagreeing_fields),
        )
    if result.outcome is PaymentFailedOutcome.LATE:
        log.info(
            "payment.failed %s for account %s acknowledged late: invoices %s are already settled or gone",
            result.event_id,
            result.account_id,
            ", ".join(result.already_settled_invoice_ids),
        )
    elif result.outcome is PaymentFailedOutcome.DUPLICATE:
        log.info("payment.failed %s for account %s: already processed", result.event_id, result.account_id)
    else:
        log.info(
            "payment.failed %s for account %s: past due %s",
            result.event_id,
            result.account_id,
            ", ".join(result.past_due_subscription_ids) or "(none newly)",
        )

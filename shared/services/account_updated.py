"""`account.updated`: a new admin, notification address or dunning policy, applied once, in time order.

The decisions are in shared/domain/account_update.py. An unknown account, an unknown dunning policy, or an event id
seen before with other content, is a named error that the queue handler sets aside as a rejection.
"""

from __future__ import annotations

import logging

from shared.domain.account_update import AccountUpdatedOutcome, AccountUpdatedResult, stage_account_updated
from shared.domain.clock import Clock
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.model import AccountField
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import AccountUpdatedEvent
from shared.domain.payment_failure import event_payload_hash
from shared.domain.retention_policy import next_review_at
from shared.services.ports import AccountUnitOfWork, DueIndex
from shared.services.unit_of_work import with_fresh_partition

log = logging.getLogger(__name__)


def apply_account_updated(
    event: AccountUpdatedEvent,
    *,
    accounts: AccountUnitOfWork,
    due: DueIndex,
    clock: Clock,
    policies: DunningPolicies,
) -> AccountUpdatedResult:
    """Set the fields the event names unless a newer change set them; a repeat of the event changes nothing."""
    now = clock.now()
    payload_hash = event_payload_hash(event)

    def change(partition: AccountPartition) -> AccountUpdatedResult:
        result = stage_account_updated(partition, event, payload_hash=payload_hash, now=now, policies=policies)
        if AccountField.DUNNING_POLICY in result.applied_fields:
            # The new policy may bring a milestone before the review the old one scheduled; a later one is harmless
            # (that review finds nothing due and schedules the next). Before the commit, as payment.failed does.
            review_at = next_review_at(partition.subscriptions, policies.for_account(partition.account), now)
            if review_at is not None:
                due.schedule(event.data.account_id, review_at)
        return result

    result = with_fresh_partition(accounts, event.data.account_id, change)
    _log_outcome(result)
    return result


def _log_outcome(result: AccountUpdatedResult) -> None:
    # Ids and field names only, never the address or the principal named.
    if result.outcome is AccountUpdatedOutcome.DUPLICATE:
        log.info("account.updated %s for account %s: already processed", result.event_id, result.account_id)
        return
    log.info(
        "account.updated %s for account %s: set %s; kept %s (changed later)",
        result.event_id,
        result.account_id,
        ", ".join(result.applied_fields) or "nothing",
        ", ".join(result.stale_fields) or "nothing",
    )

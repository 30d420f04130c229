"""Complete a successful payment: commit every effect in one write, then deliver the receipt and the events."""

from __future__ import annotations

import logging

from shared.domain.clock import Clock
from shared.domain.lifecycle import TransitionReason
from shared.domain.model import Frozen, ProcessedEvent
from shared.domain.partition import AccountPartition
from shared.domain.payment_success import stage_payment_success
from shared.domain.payments import ChargeResult
from shared.domain.settle_balance import SettlementNotPendingError, record_card_hints
from shared.domain.settlement import Settlement, SettlementStatus
from shared.services.delivery import Outbox, deliver, schedule_recovery
from shared.services.ports import AccountUnitOfWork, DueEntry
from shared.services.unit_of_work import with_fresh_partition
from shared.services.views import SettlementTerms, complete_idempotency_record

log = logging.getLogger(__name__)


class Completion(Frozen):
    settlement: Settlement
    applied: bool  # False when an earlier run had already committed it


def complete_payment(
    account_id: str,
    settlement_id: str,
    *,
    accounts: AccountUnitOfWork,
    outbox: Outbox,
    clock: Clock,
    terms: SettlementTerms,
    reason: TransitionReason = TransitionReason.BALANCE_SETTLED,
    charge: ChargeResult | None = None,
    processed_event: ProcessedEvent | None = None,
    known: AccountPartition | None = None,
    recovery: DueEntry | None = None,
) -> Completion:
    """Commit every effect of a successful payment in one write, then deliver the receipt and events.

    The card flow and `payment.received` both end here. With `processed_event`, its marker is staged last and a
    settlement that is no longer pending is an error (a second payment); without, completing twice is a no-op.
    `known` is the partition the caller committed last (the claim): decided on first, it saves a read; if anyone
    wrote since, its commit loses on the root row's ETag and the change is decided again on a fresh read.
    `recovery` is a safety-net entry the caller already put on the due index (else one is scheduled here); it is
    removed once the delivery went through.
    """
    committed: list[AccountPartition] = []

    def change(partition: AccountPartition) -> Completion:
        committed[:] = [partition]
        settlement = partition.get(Settlement, settlement_id)
        if settlement is None:
            raise SettlementNotPendingError(f"settlement {settlement_id} does not exist")
        if processed_event is not None and partition.has_processed(processed_event.event_id):
            return Completion(settlement=settlement, applied=False)
        if settlement.status is SettlementStatus.SUCCEEDED and processed_event is None:
            return Completion(settlement=settlement, applied=False)
        if settlement.status is not SettlementStatus.PENDING:
            raise SettlementNotPendingError(f"settlement {settlement_id} is {settlement.status}")
        if charge is not None:
            record_card_hints(partition, settlement, charge)
        now = clock.now()
        succeeded = stage_payment_success(
            partition, settlement, at=now, reason=reason, portal_base_url=terms.portal_base_url
        )
        complete_idempotency_record(partition, succeeded, terms, now)
        if processed_event is not None:
            partition.record_processed(processed_event)
        return Completion(settlement=succeeded, applied=True)

    recovery = recovery or schedule_recovery(outbox, account_id)
    completion = with_fresh_partition(accounts, account_id, change, known=known)
    deliver_after_commit(outbox, account_id, committed[-1], recovery=recovery)
    return completion


def deliver_after_commit(
    outbox: Outbox, account_id: str, partition: AccountPartition | None = None, *, recovery: DueEntry | None = None
) -> None:
    # The effects are committed and a recovery entry is on the due index: a failed delivery is finished later.
    try:
        deliver(outbox, account_id, partition, recovery=recovery)
    except Exception:
        log.exception("delivery for account %s failed; the recovery timer will finish it", account_id)

"""Settle balance: pay the whole past-due balance once per Idempotency-Key, by card or by invoice.

How a payment stays single under retries, crashes and races:
- The Idempotency-Key maps to a settlement id (a hash of account and key). The first request stores the pending
  settlement and an IN_PROGRESS idempotency record in one commit guarded by the account's root-row ETag, so of
  concurrent requests for one account exactly one claims the scope; the others read the claim and are refused.
- The settlement id is the gateway's idempotency key: charging again after a crash cannot charge twice, and a
  retry with the same key (or reconciliation) looks the charge up and finishes the state change.
- Success is one commit (payment_completion.py), decided on the claim's own committed partition; delivery follows,
  from the partition that commit wrote.
- A balance has at most one pending wire reference: an invoice request for a balance that already has one (the
  same charges and total) is answered with that settlement; a new reference is issued only for a changed balance.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from shared.domain.clock import Clock
from shared.domain.errors import ConcurrencyError, DomainError
from shared.domain.idempotency import IdempotencyRecord
from shared.domain.model import PaymentMethod, PaymentMethodKind, Subscription
from shared.domain.partition import AccountPartition
from shared.domain.payments import ChargeOutcome, ChargeResult
from shared.domain.settle_balance import (
    NOT_CHARGED,
    PENDING_CHARGE_EXPIRY,
    BalanceChangedError,
    IdempotencyKeyReusedError,
    SettleCommand,
    SettlementInProgressError,
    authorize,
    card_token_of,
    claim_scope,
    is_abandoned,
    pending_card_settlements,
    pending_invoice_of,
    pending_settlements,
    settlement_id_for,
    stage_claim,
    stage_decline,
)
from shared.domain.settlement import Settlement, SettlementScope, SettlementStatus
from shared.services.delivery import Outbox
from shared.services.payment_completion import complete_payment
from shared.services.ports import AccountUnitOfWork, DueEntry, DueIndex, PaymentGateway
from shared.services.unit_of_work import with_fresh_partition
from shared.services.views import (
    Quote,
    SettlementOutcome,
    SettlementTerms,
    complete_idempotency_record,
    outcome_of,
    quote_of,
)

log = logging.getLogger(__name__)
_CLAIM_ATTEMPTS = 8


class QuoteChangedError(DomainError):
    """The balance changed since the quote the request was based on; nothing was charged."""

    def __init__(self, quote: Quote) -> None:
        super().__init__("the balance changed since the quote; review the new quote and pay its total")
        self.quote = quote


@dataclass(frozen=True)
class Payments:
    """The ports a payment touches: the account, the due index (for a charge in flight), the gateway, delivery."""

    accounts: AccountUnitOfWork
    due: DueIndex
    gateway: PaymentGateway
    outbox: Outbox
    clock: Clock
    terms: SettlementTerms


def settle_balance(payments: Payments, command: SettleCommand) -> SettlementOutcome:
    """Pay the whole balance once per Idempotency-Key; see the module docstring for the guarantees."""
    settlement_id = settlement_id_for(command.account_id, command.idempotency_key)
    for _ in range(_CLAIM_ATTEMPTS):
        partition = payments.accounts.load(command.account_id)
        account = authorize(partition, command.principal_id)
        record = partition.get(IdempotencyRecord, settlement_id)
        if record is not None:
            return _resume(payments, partition, record, command.payload_hash)
        try:
            subscription, method, token, scope = claim_scope(partition, account, command, settlement_id)
        except BalanceChangedError as error:
            raise QuoteChangedError(quote_of(partition, command.subscription_id, error.scope)) from None
        if _reconciled_a_card_in_flight(payments, partition, scope):
            continue  # a stale pending settlement was reconciled: look again
        same_invoice = pending_invoice_of(partition, scope) if method.kind is PaymentMethodKind.INVOICE else None
        if same_invoice is not None:
            answer = _answer_with_pending_invoice(payments, partition, command, settlement_id, same_invoice)
        else:
            claimed = _Claimed(settlement_id, subscription, method, token, scope)
            answer = _claim_and_pay(payments, partition, command, claimed)
        if answer is not None:
            return answer
    raise ConcurrencyError(f"account {command.account_id} kept changing; try again")


@dataclass(frozen=True)
class _Claimed:
    """What a new request claims: its settlement id, the subscription, the method (and card token), the scope."""

    settlement_id: str
    subscription: Subscription
    method: PaymentMethod
    token: str | None
    scope: SettlementScope


def _reconciled_a_card_in_flight(payments: Payments, partition: AccountPartition, scope: SettlementScope) -> bool:
    """A card charge in flight for these charges blocks (SettlementInProgressError) unless it can be finished now.

    A pending invoice does not block: a new payment supersedes it.
    """
    blocking = [
        p for p in pending_settlements(partition, scope.invoice_ids) if p.payment_method_kind is PaymentMethodKind.CARD
    ]
    if not blocking:
        return False
    if _reconcile(payments, partition.account_id, blocking[0]) is None:
        raise SettlementInProgressError(blocking[0].id)
    return True


def _claim_and_pay(
    payments: Payments, partition: AccountPartition, command: SettleCommand, claim: _Claimed
) -> SettlementOutcome | None:
    """Commit the pending settlement with its idempotency record, then charge; None when the claim lost a race."""
    now = payments.clock.now()
    settlement, record = stage_claim(
        partition,
        command,
        settlement_id=claim.settlement_id,
        subscription=claim.subscription,
        method=claim.method,
        token=claim.token,
        scope=claim.scope,
        now=now,
    )
    if claim.token is None:
        record = record.complete(outcome_of(settlement, payments.terms, partition).to_wire(), now)
    partition.put(settlement, record)
    # The charge's safety net: a crash before its outcome is recorded, or before the receipt went out, is finished
    # by the pass this entry leads to; a charge that ended here removes it.
    in_flight = payments.due.schedule(partition.account_id, now + PENDING_CHARGE_EXPIRY) if claim.token else None
    try:
        payments.accounts.commit(partition)
    except ConcurrencyError:
        return None
    if claim.token is None:
        return outcome_of(settlement, payments.terms, partition)
    result = payments.gateway.charge(settlement.total, claim.token, settlement.id, account_id=partition.account_id)
    return record_charge_result(
        payments, partition.account_id, settlement, result, known=partition, safety_net=in_flight
    )


def _answer_with_pending_invoice(
    payments: Payments, partition: AccountPartition, command: SettleCommand, settlement_id: str, pending: Settlement
) -> SettlementOutcome | None:
    """One pending wire reference per balance: the customer may already have sent money quoting it. The new key
    keeps that answer (a repeat replays it); None when the account changed meanwhile."""
    now = payments.clock.now()
    outcome = outcome_of(pending, payments.terms, partition)
    record = IdempotencyRecord(settlement_id=settlement_id, payload_hash=command.payload_hash, created_at=now)
    partition.put(record.complete(outcome.to_wire(), now))
    try:
        payments.accounts.commit(partition)
    except ConcurrencyError:
        return None
    return outcome


def reconcile_settlements(payments: Payments, account_id: str) -> list[SettlementOutcome]:
    """Finish pending card settlements from the gateway's record (for the timer, and for blocked requests)."""
    partition = payments.accounts.load(account_id)
    outcomes = []
    for settlement in pending_card_settlements(partition):
        outcome = _reconcile(payments, account_id, settlement)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def _resume(
    payments: Payments, partition: AccountPartition, record: IdempotencyRecord, payload_hash: str
) -> SettlementOutcome:
    """A request with a known key: replay its answer, or finish the charge it started (never charging twice)."""
    if not hmac.compare_digest(record.payload_hash, payload_hash):
        raise IdempotencyKeyReusedError("this Idempotency-Key was used with another request body")
    if record.is_completed and record.response is not None:
        return SettlementOutcome.model_validate(record.response).model_copy(update={"replayed": True})
    settlement = partition.get(Settlement, record.settlement_id)
    assert settlement is not None, "an idempotency record is committed with its settlement"
    if settlement.status is not SettlementStatus.PENDING:
        return outcome_of(settlement, payments.terms, partition)
    result = payments.gateway.lookup(settlement.id)
    if result is None:
        result = payments.gateway.charge(
            settlement.total, card_token_of(partition, settlement), settlement.id, account_id=partition.account_id
        )
    return record_charge_result(payments, partition.account_id, settlement, result, known=partition)


def _reconcile(payments: Payments, account_id: str, settlement: Settlement) -> SettlementOutcome | None:
    """Settle a pending card charge from the gateway's record; None while its outcome is still open."""
    result = payments.gateway.lookup(settlement.id)
    if result is None:
        if not is_abandoned(settlement, payments.clock.now()):
            return None
        return _record_decline(payments, account_id, settlement.id, NOT_CHARGED)
    if result.outcome is ChargeOutcome.UNKNOWN:
        return None
    return record_charge_result(payments, account_id, settlement, result)


def record_charge_result(
    payments: Payments,
    account_id: str,
    settlement: Settlement,
    result: ChargeResult,
    *,
    known: AccountPartition | None = None,
    safety_net: DueEntry | None = None,
) -> SettlementOutcome:
    """Record what the gateway answered; `known` is the partition of the claim just committed (it saves a read),
    `safety_net` the due entry the claim scheduled: kept only while the outcome is open."""
    if result.outcome is ChargeOutcome.SUCCEEDED:
        completion = complete_payment(
            account_id,
            settlement.id,
            accounts=payments.accounts,
            outbox=payments.outbox,
            clock=payments.clock,
            terms=payments.terms,
            charge=result,
            known=known,
            recovery=safety_net,
        )
        return outcome_of(completion.settlement, payments.terms)
    if result.outcome is ChargeOutcome.DECLINED:
        declined = _record_decline(payments, account_id, settlement.id, result.reason or "declined", known=known)
        if safety_net is not None:
            payments.due.remove(safety_net)
        return declined
    log.warning("settlement %s: the gateway did not answer; the outcome is looked up later", settlement.id)
    partition = known or payments.accounts.load(account_id)
    return outcome_of(settlement, payments.terms, partition).model_copy(update={"reason": result.reason})


def _record_decline(
    payments: Payments, account_id: str, settlement_id: str, reason: str, *, known: AccountPartition | None = None
) -> SettlementOutcome:
    """A decline changes nothing but the attempt record; the alert stays."""

    def change(partition: AccountPartition) -> SettlementOutcome:
        was_pending = partition.get(Settlement, settlement_id)
        settlement = stage_decline(partition, settlement_id, reason, payments.clock.now())
        if was_pending is not None and was_pending.status is SettlementStatus.PENDING:
            complete_idempotency_record(partition, settlement, payments.terms, payments.clock.now())
        return outcome_of(settlement, payments.terms, partition)

    outcome = with_fresh_partition(payments.accounts, account_id, change, known=known)
    log.info("settlement %s declined: %s", settlement_id, outcome.reason)
    return outcome

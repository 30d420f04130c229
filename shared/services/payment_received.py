"""`payment.received`: money arrived for an invoice settlement; apply the same effects as a card payment.

The event names the account and the payment reference quoted on the wire transfer. It settles the pending
invoice settlement with that reference when amount and currency match; anything else is a named error that the
queue handler records as a rejection (not retried: the cause is in the data). Exactly once in effect: the
processed-event marker is staged last, in the same write as the effects.
"""

from __future__ import annotations

import hashlib

from shared.domain.clock import Clock
from shared.domain.errors import DomainError
from shared.domain.lifecycle import TransitionReason
from shared.domain.model import Frozen, PaymentMethodKind, ProcessedEvent
from shared.domain.payment_events import PAYMENT_RECEIVED, PaymentReceivedEvent
from shared.domain.settle_balance import SettlementNotPendingError, normalized_reference
from shared.domain.settlement import Settlement, SettlementStatus
from shared.services.delivery import Outbox
from shared.services.payment_completion import complete_payment
from shared.services.ports import AccountUnitOfWork
from shared.services.views import SettlementTerms


class PaymentReceivedRejectedError(DomainError):
    """The event cannot be applied as it is; record it as a rejection with this message."""


class UnknownAccountError(PaymentReceivedRejectedError):
    pass


class ReferenceNotFoundError(PaymentReceivedRejectedError):
    """No invoice settlement of the account carries this reference."""


class SettlementClosedError(PaymentReceivedRejectedError):
    """The reference belongs to a settlement already paid or superseded: this money needs an operator (refund)."""


class AmountMismatchError(PaymentReceivedRejectedError):
    pass


class PaymentReceivedResult(Frozen):
    event_id: str
    account_id: str
    settlement_id: str | None
    duplicate: bool
    reenabled_subscription_ids: tuple[str, ...] = ()
    switched_subscription_ids: tuple[str, ...] = ()


def apply_payment_received(
    event: PaymentReceivedEvent,
    *,
    accounts: AccountUnitOfWork,
    outbox: Outbox,
    clock: Clock,
    terms: SettlementTerms,
) -> PaymentReceivedResult:
    """Settle the pending invoice settlement the event's reference names; a repeat of the event changes nothing."""
    data = event.data
    partition = accounts.load(data.account_id)
    if not partition.exists:
        raise UnknownAccountError(f"account {data.account_id} does not exist")
    if partition.has_processed(event.id):
        return PaymentReceivedResult(event_id=event.id, account_id=data.account_id, settlement_id=None, duplicate=True)
    settlement = _settlement_for(partition.all(Settlement), data.reference)
    if settlement.status is not SettlementStatus.PENDING:
        raise SettlementClosedError(
            f"settlement {settlement.id} with this reference is {settlement.status}"
            + (f" ({settlement.reason})" if settlement.reason else "")
        )
    if settlement.total != data.money:
        raise AmountMismatchError(
            f"received {data.money}, but settlement {settlement.id} is for {settlement.total}; nothing was applied"
        )
    marker = ProcessedEvent(
        event_id=event.id,
        event_type=PAYMENT_RECEIVED,
        payload_hash=hashlib.sha256(data.model_dump_json().encode()).hexdigest(),
        processed_at=clock.now(),
    )
    try:
        completion = complete_payment(
            data.account_id,
            settlement.id,
            accounts=accounts,
            outbox=outbox,
            clock=clock,
            terms=terms,
            reason=TransitionReason.PAYMENT_RECEIVED,
            processed_event=marker,
        )
    except SettlementNotPendingError as error:  # another payment for the same reference won a race
        raise SettlementClosedError(str(error)) from error
    completed = completion.settlement
    return PaymentReceivedResult(
        event_id=event.id,
        account_id=data.account_id,
        settlement_id=completed.id,
        duplicate=not completion.applied,
        reenabled_subscription_ids=completed.reenabled_subscription_ids if completion.applied else (),
        switched_subscription_ids=completed.switched_subscription_ids if completion.applied else (),
    )


def _settlement_for(settlements: list[Settlement], reference: str) -> Settlement:
    wanted = normalized_reference(reference)
    matches = [
        s
        for s in settlements
        if s.payment_method_kind is PaymentMethodKind.INVOICE
        and s.reference is not None
        and normalized_reference(s.reference) == wanted
    ]
    if not matches:
        raise ReferenceNotFoundError("no invoice settlement of this account has this payment reference")
    pending = [s for s in matches if s.status is SettlementStatus.PENDING]
    return pending[0] if pending else matches[0]

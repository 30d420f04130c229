"""Settle balance, decided: who may pay, what a request claims, what a payment's success or decline changes.

The rule for what the balance is lives in settlement.py; this module applies it to one account's partition. No I/O:
the service charges the gateway and commits what is staged here.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta

from pydantic import model_validator

from shared.domain.errors import DomainError
from shared.domain.idempotency import IdempotencyRecord
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Account, Charge, Frozen, Identifier, PaymentMethod, PaymentMethodKind, Subscription
from shared.domain.money import Money
from shared.domain.partition import AccountPartition
from shared.domain.payments import ChargeResult
from shared.domain.settlement import Settlement, SettlementScope, SettlementStatus, settlement_scope

# A pending card charge nobody answered for this long was abandoned (the function timeout is 10 minutes).
PENDING_CHARGE_EXPIRY = timedelta(minutes=15)
NOT_CHARGED = "not_charged"
SUPERSEDED = "superseded"
NEW_INVOICE_METHOD_ID = "pm-invoice"
QUOTE_VERSION_PREFIX = "q1-"


class AccountNotFoundError(DomainError):
    pass


class PrincipalNotAllowedError(DomainError):
    """Only the account's admin principal may see or settle its balance."""


class SubscriptionNotFoundError(DomainError):
    pass


class PaymentMethodNotFoundError(DomainError):
    pass


class PaymentMethodNotChargeableError(DomainError):
    """The chosen card has no gateway token on file; the customer must add the card again."""


class SubscriptionDeletedError(DomainError):
    """A deleted subscription cannot come back, so there is nothing to settle for it."""


class BalanceChangedError(DomainError):
    """The balance changed since the quote the request was based on; nothing was charged."""

    def __init__(self, scope: SettlementScope) -> None:
        super().__init__("the balance changed since the quote; review the new quote and pay its total")
        self.scope = scope


class SettlementInProgressError(DomainError):
    def __init__(self, settlement_id: str) -> None:
        super().__init__(f"settlement {settlement_id} for this balance is still being processed")
        self.settlement_id = settlement_id


class SettlementNotPendingError(DomainError):
    """The settlement was already completed, declined or superseded."""


class IdempotencyKeyReusedError(DomainError):
    pass


class PaymentChoice(Frozen):
    """Exactly one of: an existing payment method, a new card as a gateway token, or payment by invoice."""

    payment_method_id: Identifier | None = None
    token: str | None = None
    invoice: bool = False

    @model_validator(mode="after")
    def _exactly_one(self) -> PaymentChoice:
        if sum((self.payment_method_id is not None, self.token is not None, self.invoice)) != 1:
            raise ValueError("choose exactly one of an existing payment method, a card token or invoice")
        return self


class SettleCommand(Frozen):
    account_id: Identifier
    principal_id: Identifier
    subscription_id: Identifier
    payment: PaymentChoice
    expected_total: Money
    quote_version: str | None = None
    idempotency_key: str

    @property
    def payload_hash(self) -> str:
        return hashlib.sha256(self.model_dump_json(exclude={"idempotency_key"}).encode()).hexdigest()


def new_card_id(settlement_id: str) -> str:
    """A card added during a settlement is stored under an id derived from it (so a retry finds it)."""
    return f"pm-{settlement_id}"


def settlement_id_for(account_id: str, idempotency_key: str) -> str:
    """The settlement an Idempotency-Key stands for; also the gateway's idempotency key."""
    return "stl-" + hashlib.sha256(f"{account_id}\n{idempotency_key}".encode()).hexdigest()[:32]


def payment_reference(settlement_id: str) -> str:
    """The reference to quote on a wire transfer: short, unambiguous, derived from the settlement."""
    digest = base64.b32encode(hashlib.sha256(settlement_id.encode()).digest()).decode()[:12]
    return f"PD-{digest[0:4]}-{digest[4:8]}-{digest[8:12]}"


def normalized_reference(reference: str) -> str:
    """Banks drop dashes and change case; compare references on letters and digits only."""
    return "".join(ch for ch in reference.upper() if ch.isalnum())


def authorize(partition: AccountPartition, principal_id: str) -> Account:
    if partition.account is None or not partition.exists:
        raise AccountNotFoundError(f"account {partition.account_id} does not exist")
    if partition.account.admin_principal_id != principal_id:
        raise PrincipalNotAllowedError("this principal is not the account's admin")
    return partition.account


def settleable_subscription(partition: AccountPartition, subscription_id: str) -> Subscription:
    subscription = partition.get(Subscription, subscription_id)
    if subscription is None:
        raise SubscriptionNotFoundError(f"subscription {subscription_id} does not exist on this account")
    if subscription.state is SubscriptionState.DELETED:
        raise SubscriptionDeletedError(f"subscription {subscription_id} is deleted and cannot be re-enabled")
    return subscription


def quote_scope(
    partition: AccountPartition, account: Account, subscription_id: str, payment_method_id: str | None
) -> tuple[Subscription, SettlementScope]:
    """The balance a quote shows: the settle rule, with the chosen existing method's own debt added."""
    subscription = settleable_subscription(partition, subscription_id)
    if payment_method_id is not None and partition.get(PaymentMethod, payment_method_id) is None:
        raise PaymentMethodNotFoundError(f"payment method {payment_method_id} does not exist on this account")
    return subscription, settlement_scope(subscription, partition.charges, account.currency, payment_method_id)


def pending_settlements(partition: AccountPartition, invoice_ids: tuple[str, ...]) -> list[Settlement]:
    """Pending settlements that cover any of these charges, oldest first."""
    wanted = set(invoice_ids)
    return sorted(
        (s for s in partition.all(Settlement) if s.status is SettlementStatus.PENDING and wanted & set(s.invoice_ids)),
        key=lambda s: (s.created_at, s.id),
    )


def pending_invoice_of(partition: AccountPartition, scope: SettlementScope) -> Settlement | None:
    """The pending invoice settlement of exactly this balance (the same charges and total), if there is one."""
    wanted = set(scope.invoice_ids)
    for settlement in pending_settlements(partition, scope.invoice_ids):
        same_balance = set(settlement.invoice_ids) == wanted and settlement.total == scope.total
        if settlement.payment_method_kind is PaymentMethodKind.INVOICE and same_balance:
            return settlement
    return None


def quote_version(partition: AccountPartition, scope: SettlementScope) -> str:
    """Changes whenever the total, the lines or any row they were read from changes; unrelated writes leave it."""
    digest = hashlib.sha256()
    for part in (scope.failed_payment_method_id, scope.selected_payment_method_id, str(scope.total)):
        digest.update(part.encode() + b"\n")
    for charge in scope.charges:
        etag = partition.etags.get((Charge, charge.invoice_id), "")
        digest.update(f"{charge.invoice_id}|{charge.amount}|{charge.payment_method_id}|{etag}\n".encode())
    return QUOTE_VERSION_PREFIX + digest.hexdigest()[:24]


def claim_scope(
    partition: AccountPartition, account: Account, command: SettleCommand, settlement_id: str
) -> tuple[Subscription, PaymentMethod, str | None, SettlementScope]:
    """The subscription, the method to pay with (and its token), and the scope; BalanceChangedError if stale."""
    subscription = settleable_subscription(partition, command.subscription_id)
    method, token = chosen_method(partition, command.payment, settlement_id)
    debt_of = method.id if partition.get(PaymentMethod, method.id) is not None else None
    scope = settlement_scope(subscription, partition.charges, account.currency, debt_of)
    if command.expected_total != scope.total or command.quote_version not in (None, quote_version(partition, scope)):
        raise BalanceChangedError(scope)
    return subscription, method, token, scope


def stage_claim(
    partition: AccountPartition,
    command: SettleCommand,
    *,
    settlement_id: str,
    subscription: Subscription,
    method: PaymentMethod,
    token: str | None,
    scope: SettlementScope,
    now: datetime,
) -> tuple[Settlement, IdempotencyRecord]:
    """Stage the pending settlement (and a card added with it); the caller stages the idempotency record."""
    settlement = Settlement(
        id=settlement_id,
        subscription_id=subscription.id,
        failed_payment_method_id=scope.failed_payment_method_id,
        payment_method_id=method.id,
        payment_method_kind=method.kind,
        invoice_ids=scope.invoice_ids,
        total=scope.total,
        reference=payment_reference(settlement_id) if method.kind is PaymentMethodKind.INVOICE else None,
        created_at=now,
    )
    record = IdempotencyRecord(settlement_id=settlement_id, payload_hash=command.payload_hash, created_at=now)
    if partition.get(PaymentMethod, method.id) is None and token is not None:
        partition.put(method)
    if method.kind is PaymentMethodKind.INVOICE:
        supersede_other_invoices(partition, settlement, now)
    return settlement, record


def chosen_method(
    partition: AccountPartition, choice: PaymentChoice, settlement_id: str
) -> tuple[PaymentMethod, str | None]:
    """The method to pay with and, for a card, the token to charge."""
    if choice.token is not None:
        card = PaymentMethod(id=new_card_id(settlement_id), kind=PaymentMethodKind.CARD, gateway_token=choice.token)
        return card, choice.token
    if choice.invoice:
        invoices = sorted(m.id for m in partition.payment_methods if m.kind is PaymentMethodKind.INVOICE)
        invoice = PaymentMethod(id=invoices[0] if invoices else NEW_INVOICE_METHOD_ID, kind=PaymentMethodKind.INVOICE)
        return partition.get(PaymentMethod, invoice.id) or invoice, None
    assert choice.payment_method_id is not None
    method = partition.get(PaymentMethod, choice.payment_method_id)
    if method is None:
        raise PaymentMethodNotFoundError(f"payment method {choice.payment_method_id} does not exist on this account")
    if method.kind is PaymentMethodKind.INVOICE:
        return method, None
    if not method.gateway_token:
        raise PaymentMethodNotChargeableError(f"payment method {method.id} has no card on file; add the card again")
    return method, method.gateway_token


def card_token_of(partition: AccountPartition, settlement: Settlement) -> str:
    method = partition.get(PaymentMethod, settlement.payment_method_id)
    if method is None or not method.gateway_token:
        raise PaymentMethodNotChargeableError(f"payment method {settlement.payment_method_id} has no card on file")
    return method.gateway_token


def pending_card_settlements(partition: AccountPartition) -> list[Settlement]:
    """Card charges whose outcome is not recorded yet, oldest first."""
    return sorted(
        (
            s
            for s in partition.all(Settlement)
            if s.status is SettlementStatus.PENDING and s.payment_method_kind is PaymentMethodKind.CARD
        ),
        key=lambda s: s.created_at,
    )


def is_abandoned(settlement: Settlement, now: datetime) -> bool:
    """A pending charge the gateway never saw, old enough that no attempt can still be running."""
    return now - settlement.created_at >= PENDING_CHARGE_EXPIRY


def stage_decline(partition: AccountPartition, settlement_id: str, reason: str, at: datetime) -> Settlement:
    """A decline changes nothing but the attempt record (and drops a card added for it); the alert stays."""
    settlement = partition.get(Settlement, settlement_id)
    assert settlement is not None
    if settlement.status is SettlementStatus.PENDING:
        settlement = settlement.decline(reason, at)
        partition.put(settlement)
        unconfirmed = partition.get(PaymentMethod, new_card_id(settlement.id))
        if unconfirmed is not None and not any(s.payment_method_id == unconfirmed.id for s in partition.subscriptions):
            partition.delete(unconfirmed)
    return settlement


def record_card_hints(partition: AccountPartition, settlement: Settlement, charge: ChargeResult) -> None:
    method = partition.get(PaymentMethod, settlement.payment_method_id)
    if method is not None and method.kind is PaymentMethodKind.CARD and charge.card_last4 and not method.last4:
        partition.put(method.model_copy(update={"brand": charge.card_brand, "last4": charge.card_last4}))


def supersede_other_invoices(partition: AccountPartition, settlement: Settlement, at: datetime) -> None:
    """Older pending invoice settlements for the same charges are void: their reference no longer settles them."""
    for other in pending_settlements(partition, settlement.invoice_ids):
        if other.id != settlement.id and other.payment_method_kind is PaymentMethodKind.INVOICE:
            partition.put(other.decline(SUPERSEDED, at))

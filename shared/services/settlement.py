"""Settle balance: the portal's overview, quote and payment of a past-due balance, by card or by invoice.

How a payment stays single under retries, crashes and races:
- The Idempotency-Key maps to a settlement id (a hash of account and key). The first request stores the pending
  settlement and an IN_PROGRESS idempotency record in one commit guarded by the account's root-row ETag, so of
  concurrent requests for one account exactly one claims the scope; the others read the claim and are refused.
- The settlement id is the gateway's idempotency key: charging again after a crash cannot charge twice, and a
  retry with the same key (or reconciliation) looks the charge up and finishes the state change.
- Success is one commit: charges paid, subscriptions re-enabled and switched to the method used, alerts
  resolved, receipt email and lifecycle events recorded, idempotency record completed. Delivery follows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import JsonValue, ValidationError, model_validator

from shared.domain.errors import ConcurrencyError, DomainError
from shared.domain.idempotency import IdempotencyRecord
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.lifecycle_events import payment_method_replaced, subscription_enabled
from shared.domain.model import (
    Account,
    Frozen,
    Identifier,
    PaymentMethod,
    PaymentMethodKind,
    ProcessedEvent,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.settlement import (
    NothingToSettleError,
    Settlement,
    SettlementEffects,
    SettlementStatus,
    apply_payment,
    settlement_scope,
)
from shared.payments.gateway import ChargeOutcome, ChargeResult
from shared.services.outbox import deliver, schedule_recovery
from shared.services.settlement_views import (
    MoneyView,
    NotificationEmailView,
    NotificationStatusView,
    Overview,
    Quote,
    Remittance,
    SettlementOutcome,
    overview_of,
    pending_settlements,
    quote_of,
    quote_version,
)
from shared.storage.account_store import AccountPartition, with_fresh_partition

if TYPE_CHECKING:
    from shared.bootstrap import Dependencies
    from shared.settings import Settings

log = logging.getLogger(__name__)

RECEIPT_TEMPLATE = "settlement_receipt"
# A pending card charge nobody answered for this long was abandoned (the function timeout is 10 minutes).
PENDING_CHARGE_EXPIRY = timedelta(minutes=15)
NOT_CHARGED = "not_charged"
SUPERSEDED = "superseded"
RECENT_NOTIFICATIONS = 10
_CLAIM_ATTEMPTS = 8
NEW_INVOICE_METHOD_ID = "pm-invoice"

__all__ = [
    "PENDING_CHARGE_EXPIRY",
    "AccountNotFoundError",
    "Completion",
    "IdempotencyKeyReusedError",
    "InvalidNotificationEmailError",
    "NothingToSettleError",
    "PaymentChoice",
    "PaymentMethodNotChargeableError",
    "PaymentMethodNotFoundError",
    "PrincipalNotAllowedError",
    "QuoteChangedError",
    "SettleCommand",
    "SettlementInProgressError",
    "SettlementNotPendingError",
    "SubscriptionDeletedError",
    "SubscriptionNotFoundError",
    "account_overview",
    "complete_payment",
    "notification_email",
    "quote_settlement",
    "reconcile_settlements",
    "settle_balance",
    "settlement_id_for",
]


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


class QuoteChangedError(DomainError):
    """The balance changed since the quote the request was based on; nothing was charged."""

    def __init__(self, quote: Quote) -> None:
        super().__init__("the balance changed since the quote; review the new quote and pay its total")
        self.quote = quote


class SettlementInProgressError(DomainError):
    def __init__(self, settlement_id: str) -> None:
        super().__init__(f"settlement {settlement_id} for this balance is still being processed")
        self.settlement_id = settlement_id


class SettlementNotPendingError(DomainError):
    """The settlement was already completed, declined or superseded."""


class IdempotencyKeyReusedError(DomainError):
    pass


class InvalidNotificationEmailError(DomainError):
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


class Completion(Frozen):
    settlement: Settlement
    applied: bool  # False when an earlier run had already committed it


class _Claim(Frozen):
    settlement: Settlement
    token: str | None


def new_card_id(settlement_id: str) -> str:
    """A card added during a settlement is stored under an id derived from it (so a retry finds it)."""
    return f"pm-{settlement_id}"


def settlement_id_for(account_id: str, idempotency_key: str) -> str:
    """The settlement an Idempotency-Key stands for; also the gateway's idempotency key."""
    return "stl-" + hashlib.sha256(f"{account_id}\n{idempotency_key}".encode()).hexdigest()[:32]


def account_overview(deps: Dependencies, account_id: str, principal_id: str) -> Overview:
    """Subscriptions with state, method and outstanding amount, open alerts and payment methods."""
    partition = deps.accounts.load(account_id)
    _authorize(partition, principal_id)
    return overview_of(partition)


def quote_settlement(
    deps: Dependencies, account_id: str, principal_id: str, subscription_id: str, payment_method_id: str | None = None
) -> Quote:
    """What must be paid at once to bring the subscription back, with the chosen method's own debt added."""
    partition = deps.accounts.load(account_id)
    account = _authorize(partition, principal_id)
    subscription = _settleable_subscription(partition, subscription_id)
    if payment_method_id is not None and partition.get(PaymentMethod, payment_method_id) is None:
        raise PaymentMethodNotFoundError(f"payment method {payment_method_id} does not exist on this account")
    scope = settlement_scope(subscription, partition.charges, account.currency, payment_method_id)
    return quote_of(partition, subscription.id, scope)


def settle_balance(deps: Dependencies, command: SettleCommand) -> SettlementOutcome:
    """Pay the whole balance once per Idempotency-Key; see the module docstring for the guarantees."""
    settlement_id = settlement_id_for(command.account_id, command.idempotency_key)
    for _ in range(_CLAIM_ATTEMPTS):
        partition = deps.accounts.load(command.account_id)
        account = _authorize(partition, command.principal_id)
        record = partition.get(IdempotencyRecord, settlement_id)
        if record is not None:
            return _resume(deps, partition, record, command.payload_hash)
        claim = _claim(deps, partition, account, command, settlement_id)
        if claim is None:
            continue  # a stale pending settlement was reconciled: look again
        if claim.token is not None:
            deps.due.schedule(account.id, deps.clock.now() + PENDING_CHARGE_EXPIRY)
        try:
            deps.accounts.commit(partition)
        except ConcurrencyError:
            continue
        if claim.token is None:
            return _outcome(claim.settlement, deps.settings, partition)
        result = deps.gateway.charge(claim.settlement.total, claim.token, claim.settlement.id)
        return _apply_charge_result(deps, account.id, claim.settlement, result)
    raise ConcurrencyError(f"account {command.account_id} kept changing; try again")


def reconcile_settlements(deps: Dependencies, account_id: str) -> list[SettlementOutcome]:
    """Finish pending card settlements from the gateway's record (for the timer, and for blocked requests)."""
    partition = deps.accounts.load(account_id)
    outcomes = []
    for settlement in sorted(partition.all(Settlement), key=lambda s: s.created_at):
        if settlement.status is SettlementStatus.PENDING and settlement.payment_method_kind is PaymentMethodKind.CARD:
            outcome = _reconcile(deps, account_id, settlement)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


def notification_email(
    deps: Dependencies, account_id: str, principal_id: str, new_address: str | None = None
) -> NotificationEmailView:
    """Read the billing notification address with the last notifications' status, or change it."""
    if new_address is None:
        partition = deps.accounts.load(account_id)
        _authorize(partition, principal_id)
        return _notification_view(partition, changed=False)

    def change(partition: AccountPartition) -> tuple[AccountPartition, bool]:
        account = _authorize(partition, principal_id)
        if account.notification_email == new_address:
            return partition, False
        try:
            updated = Account.model_validate({**account.model_dump(), "notification_email": new_address})
        except ValidationError as error:
            raise InvalidNotificationEmailError("not a valid email address") from error
        partition.set_account(updated)
        # Emails not yet sent go to the new address: the old one is likely why the customer asked.
        partition.put(
            *(n.model_copy(update={"to_address": new_address}) for n in partition.notifications if n.is_pending)
        )
        return partition, True

    partition, changed = with_fresh_partition(deps.accounts, account_id, change)
    if changed:
        log.info("notification address of account %s changed", account_id)
    return _notification_view(partition, changed=changed)


def complete_payment(
    deps: Dependencies,
    account_id: str,
    settlement_id: str,
    *,
    reason: TransitionReason = TransitionReason.BALANCE_SETTLED,
    charge: ChargeResult | None = None,
    processed_event: ProcessedEvent | None = None,
) -> Completion:
    """Commit every effect of a successful payment in one write, then deliver the receipt and events.

    The card flow and `payment.received` both end here. With `processed_event`, its marker is staged last and a
    settlement that is no longer pending is an error (a second payment); without, completing twice is a no-op.
    """

    def change(partition: AccountPartition) -> Completion:
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
            _record_card_hints(partition, settlement, charge)
        succeeded = stage_payment_success(partition, settlement, deps.settings, at=deps.clock.now(), reason=reason)
        if processed_event is not None:
            partition.record_processed(processed_event)
        return Completion(settlement=succeeded, applied=True)

    schedule_recovery(deps.outbox, account_id)
    completion = with_fresh_partition(deps.accounts, account_id, change)
    _deliver(deps, account_id)
    return completion


def stage_payment_success(
    partition: AccountPartition, settlement: Settlement, settings: Settings, *, at: datetime, reason: TransitionReason
) -> Settlement:
    """Stage the success effects on `partition` (not committed); returns the succeeded settlement."""
    account = partition.account
    assert account is not None
    method = partition.get(PaymentMethod, settlement.payment_method_id) or PaymentMethod(
        id=settlement.payment_method_id, kind=settlement.payment_method_kind
    )
    partition.put(method)
    effects = apply_payment(
        settlement, partition.subscriptions, partition.charges, partition.payment_methods, at=at, reason=reason
    )
    partition.put(*effects.charges, *effects.subscriptions, *effects.payment_methods)
    succeeded = settlement.succeed(effects, at)
    _resolve_alerts(partition, succeeded, at)
    _supersede_other_invoices(partition, succeeded, at)
    partition.put(_receipt(partition, account, succeeded, settings, at))
    partition.put(*_lifecycle_events(account.id, succeeded, effects, reason, at))
    partition.put(succeeded)
    _complete_record(partition, succeeded, settings, at)
    return succeeded


def _authorize(partition: AccountPartition, principal_id: str) -> Account:
    if partition.account is None or not partition.exists:
        raise AccountNotFoundError(f"account {partition.account_id} does not exist")
    if partition.account.admin_principal_id != principal_id:
        raise PrincipalNotAllowedError("this principal is not the account's admin")
    return partition.account


def _settleable_subscription(partition: AccountPartition, subscription_id: str) -> Subscription:
    subscription = partition.get(Subscription, subscription_id)
    if subscription is None:
        raise SubscriptionNotFoundError(f"subscription {subscription_id} does not exist on this account")
    if subscription.state is SubscriptionState.DELETED:
        raise SubscriptionDeletedError(f"subscription {subscription_id} is deleted and cannot be re-enabled")
    return subscription


def _claim(
    deps: Dependencies, partition: AccountPartition, account: Account, command: SettleCommand, settlement_id: str
) -> _Claim | None:
    """Stage the pending settlement and its idempotency record; None when a stale claim was reconciled first."""
    subscription = _settleable_subscription(partition, command.subscription_id)
    method, token = _chosen_method(partition, command.payment, settlement_id)
    debt_of = method.id if partition.get(PaymentMethod, method.id) is not None else None
    scope = settlement_scope(subscription, partition.charges, account.currency, debt_of)
    if command.expected_total != scope.total or command.quote_version not in (None, quote_version(partition, scope)):
        raise QuoteChangedError(quote_of(partition, subscription.id, scope))
    for pending in pending_settlements(partition, scope.invoice_ids):
        # A card charge in flight blocks; a pending invoice does not (a new payment supersedes it).
        if pending.payment_method_kind is PaymentMethodKind.CARD:
            if _reconcile(deps, account.id, pending) is None:
                raise SettlementInProgressError(pending.id)
            return None
    now = deps.clock.now()
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
        _supersede_other_invoices(partition, settlement, now)
        record = record.complete(_outcome(settlement, deps.settings, partition).to_wire(), now)
    partition.put(settlement, record)
    return _Claim(settlement=settlement, token=token)


def _chosen_method(
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


def _resume(
    deps: Dependencies, partition: AccountPartition, record: IdempotencyRecord, payload_hash: str
) -> SettlementOutcome:
    """A request with a known key: replay its answer, or finish the charge it started (never charging twice)."""
    if not hmac.compare_digest(record.payload_hash, payload_hash):
        raise IdempotencyKeyReusedError("this Idempotency-Key was used with another request body")
    if record.is_completed and record.response is not None:
        return SettlementOutcome.model_validate(record.response).model_copy(update={"replayed": True})
    settlement = partition.get(Settlement, record.settlement_id)
    assert settlement is not None, "an idempotency record is committed with its settlement"
    if settlement.status is not SettlementStatus.PENDING:
        return _outcome(settlement, deps.settings, partition)
    result = deps.gateway.lookup(settlement.id)
    if result is None:
        token = _token_of(partition, settlement)
        result = deps.gateway.charge(settlement.total, token, settlement.id)
    return _apply_charge_result(deps, partition.account_id, settlement, result)


def _token_of(partition: AccountPartition, settlement: Settlement) -> str:
    method = partition.get(PaymentMethod, settlement.payment_method_id)
    if method is None or not method.gateway_token:
        raise PaymentMethodNotChargeableError(f"payment method {settlement.payment_method_id} has no card on file")
    return method.gateway_token


def _reconcile(deps: Dependencies, account_id: str, settlement: Settlement) -> SettlementOutcome | None:
    """Settle a pending card charge from the gateway's record; None while its outcome is still open."""
    result = deps.gateway.lookup(settlement.id)
    if result is None:
        if deps.clock.now() - settlement.created_at < PENDING_CHARGE_EXPIRY:
            return None
        return _record_decline(deps, account_id, settlement.id, NOT_CHARGED)
    if result.outcome is ChargeOutcome.UNKNOWN:
        return None
    return _apply_charge_result(deps, account_id, settlement, result)


def _apply_charge_result(
    deps: Dependencies, account_id: str, settlement: Settlement, result: ChargeResult
) -> SettlementOutcome:
    if result.outcome is ChargeOutcome.SUCCEEDED:
        completion = complete_payment(deps, account_id, settlement.id, charge=result)
        return _outcome(completion.settlement, deps.settings)
    if result.outcome is ChargeOutcome.DECLINED:
        return _record_decline(deps, account_id, settlement.id, result.reason or "declined")
    log.warning("settlement %s: the gateway did not answer; the outcome is looked up later", settlement.id)
    partition = deps.accounts.load(account_id)
    return _outcome(settlement, deps.settings, partition).model_copy(update={"reason": result.reason})


def _record_decline(deps: Dependencies, account_id: str, settlement_id: str, reason: str) -> SettlementOutcome:
    """A decline changes nothing but the attempt record; the alert stays."""

    def change(partition: AccountPartition) -> SettlementOutcome:
        settlement = partition.get(Settlement, settlement_id)
        assert settlement is not None
        if settlement.status is SettlementStatus.PENDING:
            settlement = settlement.decline(reason, deps.clock.now())
            partition.put(settlement)
            unconfirmed = partition.get(PaymentMethod, new_card_id(settlement.id))
            if unconfirmed is not None and not any(
                s.payment_method_id == unconfirmed.id for s in partition.subscriptions
            ):
                partition.delete(unconfirmed)
            _complete_record(partition, settlement, deps.settings, deps.clock.now())
        return _outcome(settlement, deps.settings, partition)

    outcome = with_fresh_partition(deps.accounts, account_id, change)
    log.info("settlement %s declined: %s", settlement_id, outcome.reason)
    return outcome


def _complete_record(partition: AccountPartition, settlement: Settlement, settings: Settings, at: datetime) -> None:
    record = partition.get(IdempotencyRecord, settlement.id)
    if record is not None and not record.is_completed:
        partition.put(record.complete(_outcome(settlement, settings, partition).to_wire(), at))


def _record_card_hints(partition: AccountPartition, settlement: Settlement, charge: ChargeResult) -> None:
    method = partition.get(PaymentMethod, settlement.payment_method_id)
    if method is not None and method.kind is PaymentMethodKind.CARD and charge.card_last4 and not method.last4:
        partition.put(method.model_copy(update={"brand": charge.card_brand, "last4": charge.card_last4}))


def _outcome(
    settlement: Settlement, settings: Settings, partition: AccountPartition | None = None
) -> SettlementOutcome:
    """The answer for a settlement; `partition` tells the subscription's current method when it did not succeed."""
    succeeded = settlement.status is SettlementStatus.SUCCEEDED
    subscription = partition.get(Subscription, settlement.subscription_id) if partition is not None else None
    active = settlement.payment_method_id if succeeded or subscription is None else subscription.payment_method_id
    remittance = None
    if settlement.payment_method_kind is PaymentMethodKind.INVOICE and settlement.reference is not None:
        remittance = Remittance(
            beneficiary=settings.remittance_beneficiary,
            iban=settings.remittance_iban,
            bic=settings.remittance_bic,
            reference=settlement.reference,
            amount=settlement.total.amount,
            currency=settlement.total.currency,
        )
    return SettlementOutcome(
        settlement_id=settlement.id,
        status=settlement.status,
        reason=settlement.reason,
        charged=MoneyView.of(settlement.total if succeeded else Money.zero(settlement.total.currency)),
        total=MoneyView.of(settlement.total),
        paid_invoices=settlement.invoice_ids if succeeded else (),
        reenabled_subscriptions=settlement.reenabled_subscription_ids,
        switched_subscriptions=settlement.switched_subscription_ids,
        active_payment_method_id=active,
        remittance=remittance,
    )


def _resolve_alerts(partition: AccountPartition, settlement: Settlement, at: datetime) -> None:
    """Resolve the alerts whose cause is gone: no debt left on their method, or all their subscriptions back."""
    owing_methods = {c.payment_method_id for c in partition.charges if c.is_outstanding}
    methods = {settlement.failed_payment_method_id, settlement.payment_method_id}
    states = {s.id: s.state for s in partition.subscriptions}
    for alert in partition.alerts:
        if not alert.is_open:
            continue
        about_paid_method = alert.payment_method_id in methods and alert.payment_method_id not in owing_methods
        subscriptions_back = (
            alert.payment_method_id is None
            and bool(set(alert.subscription_ids) & set(settlement.reenabled_subscription_ids))
            and all(states.get(s) is SubscriptionState.ENABLED for s in alert.subscription_ids)
        )
        if about_paid_method or subscriptions_back:
            partition.put(alert.resolve(at))


def _supersede_other_invoices(partition: AccountPartition, settlement: Settlement, at: datetime) -> None:
    """Older pending invoice settlements for the same charges are void: their reference no longer settles them."""
    for other in pending_settlements(partition, settlement.invoice_ids):
        if other.id != settlement.id and other.payment_method_kind is PaymentMethodKind.INVOICE:
            partition.put(other.decline(SUPERSEDED, at))


def _receipt(
    partition: AccountPartition, account: Account, settlement: Settlement, settings: Settings, at: datetime
) -> Notification:
    names = {s.id: s.name for s in partition.subscriptions}
    charges = [c for c in partition.charges if c.invoice_id in set(settlement.invoice_ids)]
    method = partition.get(PaymentMethod, settlement.payment_method_id)
    context: dict[str, JsonValue] = {
        "account_id": account.id,
        "settlement_id": settlement.id,
        "amount": settlement.total.amount,
        "currency": settlement.total.currency,
        "paid_on": at.date().isoformat(),
        "payment_method": method.display_name if method is not None else settlement.payment_method_kind.value,
        "paid_by_invoice": settlement.payment_method_kind is PaymentMethodKind.INVOICE,
        "lines": [
            {
                "subscription": names.get(c.subscription_id, c.subscription_id),
                "service": c.service,
                "invoice_id": c.invoice_id,
                "amount": c.amount.amount,
            }
            for c in sorted(charges, key=lambda c: (c.due_date, c.invoice_id))
        ],
        "reenabled": [names.get(s, s) for s in settlement.reenabled_subscription_ids],
        "switched": [names.get(s, s) for s in settlement.switched_subscription_ids],
        "portal_url": f"{settings.portal_base_url}/accounts/{account.id}/billing",
    }
    return Notification(
        id=f"receipt-{settlement.id}",
        template=RECEIPT_TEMPLATE,
        locale=account.locale,
        to_address=account.notification_email,
        context=context,
        created_at=at,
        next_attempt_at=at,
    )


def _lifecycle_events(
    account_id: str, settlement: Settlement, effects: SettlementEffects, reason: TransitionReason, at: datetime
) -> list[LifecycleEvent]:
    changed = {subscription.id: subscription for subscription in effects.subscriptions}
    events = [
        subscription_enabled(account_id, changed[subscription_id], cause=settlement, reason=reason, at=at)
        for subscription_id in effects.reenabled_subscription_ids
    ]
    if effects.switched_subscription_ids:
        events.append(payment_method_replaced(account_id, settlement, at=at))
    return events


def payment_reference(settlement_id: str) -> str:
    """The reference to quote on a wire transfer: short, unambiguous, derived from the settlement."""
    digest = base64.b32encode(hashlib.sha256(settlement_id.encode()).digest()).decode()[:12]
    return f"PD-{digest[0:4]}-{digest[4:8]}-{digest[8:12]}"


def normalized_reference(reference: str) -> str:
    """Banks drop dashes and change case; compare references on letters and digits only."""
    return "".join(ch for ch in reference.upper() if ch.isalnum())


def _notification_view(partition: AccountPartition, *, changed: bool) -> NotificationEmailView:
    assert partition.account is not None
    recent = sorted(partition.notifications, key=lambda n: (n.created_at, n.id), reverse=True)[:RECENT_NOTIFICATIONS]
    return NotificationEmailView(
        notification_email=partition.account.notification_email,
        locale=partition.account.locale,
        changed=changed,
        last_notifications=tuple(
            NotificationStatusView(
                id=n.id,
                template=n.template,
                status=n.status,
                attempts=n.attempts,
                created_at=n.created_at,
                sent_at=n.sent_at,
                last_error=n.last_error,
            )
            for n in recent
        ),
    )


def _deliver(deps: Dependencies, account_id: str) -> None:
    # The effects are committed and a recovery entry is on the due index: a failed delivery is finished later.
    try:
        deliver(deps.outbox, account_id)
    except Exception:
        log.exception("delivery for account %s failed; the recovery timer will finish it", account_id)

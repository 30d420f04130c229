"""A successful payment, decided: charges paid, subscriptions back, alerts resolved, a receipt and events recorded.

The card flow, a wire transfer (`payment.received`) and, later, automatic retries all end here. No I/O.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import JsonValue

from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.lifecycle_events import payment_method_replaced, subscription_enabled
from shared.domain.links import billing_url
from shared.domain.model import Account, PaymentMethod, PaymentMethodKind
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.partition import AccountPartition
from shared.domain.settle_balance import supersede_other_invoices
from shared.domain.settlement import Settlement, SettlementEffects, apply_payment

RECEIPT_TEMPLATE = "settlement_receipt"
# The receipt of an automatic retry: the customer did nothing, so it says the payment was collected on its own.
RETRY_RECEIPT_TEMPLATE = "retry_receipt"


def stage_payment_success(
    partition: AccountPartition, settlement: Settlement, *, at: datetime, reason: TransitionReason, portal_base_url: str
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
    resolve_paid_alerts(partition, succeeded, at)
    supersede_other_invoices(partition, succeeded, at)
    partition.put(_receipt(partition, account, succeeded, portal_base_url, at))
    partition.put(*_lifecycle_events(account.id, succeeded, effects, reason, at))
    partition.put(succeeded)
    return succeeded


def resolve_paid_alerts(partition: AccountPartition, settlement: Settlement, at: datetime) -> None:
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


def _receipt(
    partition: AccountPartition, account: Account, settlement: Settlement, portal_base_url: str, at: datetime
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
        "portal_url": billing_url(portal_base_url, account.id),
    }
    if settlement.retry_attempt is not None:
        context["retry_attempt"] = settlement.retry_attempt
    return Notification(
        id=f"receipt-{settlement.id}",
        template=RETRY_RECEIPT_TEMPLATE if settlement.retry_attempt is not None else RECEIPT_TEMPLATE,
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
        events.extend(payment_method_replaced(account_id, settlement, at=at))
    return events

"""`seed-demo` and `show-account`: a small demo data set, and an operator's view of one account."""

from __future__ import annotations

import argparse
import contextlib
import json
from datetime import datetime

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.bootstrap import Dependencies, dependencies
from shared.domain.model import Account, PaymentMethod, PaymentMethodKind, Subscription
from shared.domain.partition import AccountPartition
from shared.domain.payment_retry import retry_attempts

PAYMENT_EVENTS_QUEUE = "payment-failed"
DEMO_ACCOUNTS: list[tuple[Account, list[PaymentMethod], list[Subscription]]] = [
    (
        Account(
            id="acc-1001",
            admin_principal_id="user-7",
            notification_email="billing@contoso.example",
            locale="nl-NL",
            currency="EUR",
        ),
        [
            PaymentMethod(
                id="pm-visa-4242", kind=PaymentMethodKind.CARD, brand="visa", last4="4242", gateway_token="tok_visa"
            ),
            PaymentMethod(
                id="pm-mc-5555",
                kind=PaymentMethodKind.CARD,
                brand="mastercard",
                last4="5555",
                gateway_token="tok_mastercard",
            ),
        ],
        [
            Subscription(id="sub-a", name="Production", service="Azure", payment_method_id="pm-visa-4242"),
            Subscription(id="sub-b", name="Dev/Test", service="Azure", payment_method_id="pm-visa-4242"),
            Subscription(id="sub-c", name="Office", service="Microsoft 365", payment_method_id="pm-visa-4242"),
        ],
    ),
    (
        Account(
            id="acc-2002",
            admin_principal_id="user-9",
            notification_email="ap@fabrikam.example",
            locale="en-US",
            currency="USD",
        ),
        [
            PaymentMethod(
                id="pm-amex-1005", kind=PaymentMethodKind.CARD, brand="amex", last4="1005", gateway_token="tok_visa"
            ),
            PaymentMethod(id="pm-invoice", kind=PaymentMethodKind.INVOICE),
        ],
        [Subscription(id="sub-x", name="Analytics", service="Azure", payment_method_id="pm-amex-1005")],
    ),
]


def demo_failure_events(now: datetime) -> list[dict[str, object]]:
    """Payment failures for the demo accounts, sent through the real queue so the app processes them."""
    return [
        {
            "specversion": "1.0",
            "id": "demo-evt-acc-1001",
            "type": "payment.failed",
            "source": "/demo",
            "time": now.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": {
                "account": {
                    "id": "acc-1001",
                    "adminPrincipalId": "user-7",
                    "notificationEmail": "billing@contoso.example",
                    "locale": "nl-NL",
                    "currency": "EUR",
                },
                "paymentMethod": {"id": "pm-visa-4242", "kind": "card", "brand": "visa", "last4": "4242"},
                "reason": "insufficient_funds",
                "charges": [
                    {
                        "invoiceId": "inv-1",
                        "subscriptionId": "sub-a",
                        "service": "Azure",
                        "amount": "49.95",
                        "currency": "EUR",
                        "dueDate": now.date().isoformat(),
                    },
                    {
                        "invoiceId": "inv-2",
                        "subscriptionId": "sub-c",
                        "service": "Microsoft 365",
                        "amount": "12.50",
                        "currency": "EUR",
                        "dueDate": now.date().isoformat(),
                    },
                ],
                "subscriptions": [
                    {"id": "sub-a", "name": "Production", "service": "Azure"},
                    {"id": "sub-b", "name": "Dev/Test", "service": "Azure"},
                    {"id": "sub-c", "name": "Office", "service": "Microsoft 365"},
                ],
            },
        },
        {
            "specversion": "1.0",
            "id": "demo-evt-acc-2002",
            "type": "payment.failed",
            "source": "/demo",
            "time": now.isoformat().replace("+00:00", "Z"),
            "data": {
                "account": {
                    "id": "acc-2002",
                    "adminPrincipalId": "user-9",
                    "notificationEmail": "ap@fabrikam.example",
                    "locale": "en-US",
                    "currency": "USD",
                },
                "paymentMethod": {"id": "pm-amex-1005", "kind": "card", "brand": "amex", "last4": "1005"},
                "reason": "expired_card",
                "charges": [
                    {
                        "invoiceId": "inv-9",
                        "subscriptionId": "sub-x",
                        "service": "Azure",
                        "amount": "310.00",
                        "currency": "USD",
                        "dueDate": now.date().isoformat(),
                    }
                ],
                "subscriptions": [{"id": "sub-x", "name": "Analytics", "service": "Azure"}],
            },
        },
    ]


def seed_demo(deps: Dependencies, *, send_failures: bool = True) -> list[str]:
    """Create the demo accounts when absent, then queue their payment failures; running it again changes nothing."""
    seeded = []
    for account, methods, subscriptions in DEMO_ACCOUNTS:
        partition = deps.accounts.load(account.id)
        if partition.exists:
            continue
        partition.set_account(account)
        partition.put(*methods, *subscriptions)
        deps.accounts.commit(partition)
        seeded.append(account.id)
    if send_failures and seeded:
        queue = QueueClient.from_connection_string(
            deps.settings.storage_connection_string.get_secret_value(),
            PAYMENT_EVENTS_QUEUE,
            message_encode_policy=TextBase64EncodePolicy(),
        )
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        for event in demo_failure_events(deps.clock.now()):
            if event["id"] in {f"demo-evt-{account_id}" for account_id in seeded}:
                queue.send_message(json.dumps(event))
    return seeded


def describe(partition: AccountPartition) -> dict[str, object]:
    account = partition.account
    return {
        "account": account.model_dump(mode="json") if account else None,
        "version": partition.version,
        "paymentMethods": [m.model_dump(mode="json", exclude={"gateway_token"}) for m in partition.payment_methods],
        "subscriptions": [
            s.model_dump(
                mode="json",
                include={
                    "id",
                    "name",
                    "service",
                    "state",
                    "payment_method_id",
                    "past_due_since",
                    "disabled_at",
                    "deadline_shift",
                },
            )
            for s in partition.subscriptions
        ],
        "charges": [
            {**c.model_dump(mode="json", exclude={"amount"}), "amount": c.amount.amount, "currency": c.amount.currency}
            for c in partition.charges
        ],
        "alerts": [a.model_dump(mode="json") for a in partition.alerts],
        "notifications": [
            n.model_dump(
                mode="json",
                include={
                    "id",
                    "template",
                    "status",
                    "attempts",
                    "sent_at",
                    "message_id",
                    "last_error",
                    "status_detail",
                    "delivery_attempt_at",
                },
            )
            for n in partition.notifications
        ],
        "paymentRetries": [
            {**a.model_dump(mode="json", exclude={"amount"}), "amount": a.amount.amount, "currency": a.amount.currency}
            for a in retry_attempts(partition)
        ],
        # Lifecycle events not published yet: normally none; one that stays is retried, and logged, until it goes.
        "pendingEvents": [
            e.model_dump(mode="json", include={"id", "type", "subject", "time"})
            for e in sorted(partition.pending_events, key=lambda e: (e.time, e.id))
        ],
    }


def _seed_command(args: argparse.Namespace) -> int:
    seeded = seed_demo(dependencies(), send_failures=not args.no_failures)
    print(f"seeded: {', '.join(seeded) if seeded else 'nothing (the demo accounts exist already)'}")
    return 0


def _show_command(args: argparse.Namespace) -> int:
    deps = dependencies()
    partition = deps.accounts.load(args.account_id)
    if not partition.exists:
        print(f"no account {args.account_id}")
        return 1
    shown = describe(partition)
    shown["holdHistory"] = [record.model_dump(mode="json") for record in deps.audit.holds(args.account_id)]
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    seed = subparsers.add_parser("seed-demo", help="create the demo accounts and queue their payment failures")
    seed.add_argument("--no-failures", action="store_true", help="only create the accounts, queue no events")
    seed.set_defaults(handler=_seed_command)
    show = subparsers.add_parser("show-account", help="print one account's state as JSON")
    show.add_argument("account_id")
    show.set_defaults(handler=_show_command)


__all__ = ["demo_failure_events", "describe", "register", "seed_demo"]

"""Payment events as the billing engine sends them, and the wiring the payment-failure tests share."""

from __future__ import annotations

import copy
import email
import json
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.bootstrap import Dependencies, build
from shared.domain.clock import Clock
from shared.services.ports import EmailSender
from shared.settings import Settings

PORTAL = "https://portal.contoso.example"

# The two examples of issue 3, verbatim.
ISSUE_PAYMENT_FAILED_EXAMPLE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-0001",
    "type": "payment.failed",
    "source": "/billing-engine",
    "time": "2026-11-24T10:00:00Z",
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
                "dueDate": "2026-11-20",
            }
        ],
        "subscriptions": [
            {"id": "sub-a", "name": "Production", "service": "Azure"},
            {"id": "sub-b", "name": "Dev/Test", "service": "Azure"},
        ],
    },
}
ISSUE_PAYMENT_RECEIVED_EXAMPLE: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-0002",
    "type": "payment.received",
    "source": "/bank-reconciliation",
    "time": "2026-11-30T09:00:00Z",
    "data": {
        "accountId": "acc-1001",
        "reference": "the reference quoted on the wire transfer",
        "amount": "49.95",
        "currency": "EUR",
    },
}


def payment_failed_document(
    account_id: str,
    *,
    event_id: str = "evt-0001",
    locale: str = "nl-NL",
    reason: str = "insufficient_funds",
    charges: list[dict[str, Any]] | None = None,
    subscriptions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The issue's example for `account_id`: a failed Visa card, sub-a unpaid, sub-b on the same card."""
    document = copy.deepcopy(ISSUE_PAYMENT_FAILED_EXAMPLE)
    document["id"] = event_id
    data = document["data"]
    data["account"]["id"] = account_id
    data["account"]["locale"] = locale
    data["reason"] = reason
    if charges is not None:
        data["charges"] = charges
    if subscriptions is not None:
        data["subscriptions"] = subscriptions
    return document


def a_charge(invoice_id: str, subscription_id: str, amount: str = "49.95", **fields: Any) -> dict[str, Any]:
    return {
        "invoiceId": invoice_id,
        "subscriptionId": subscription_id,
        "service": "Azure",
        "amount": amount,
        "currency": "EUR",
        "dueDate": "2026-11-20",
        **fields,
    }


def body_of(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


def build_dependencies(
    connection_string: str, outbox_dir: Path, clock: Clock, email_sender: EmailSender | None = None
) -> Dependencies:
    settings = Settings(
        storage_connection_string=SecretStr(connection_string), outbox_dir=outbox_dir, portal_base_url=PORTAL
    )
    return build(settings, clock=clock, email=email_sender)


def eml_files(outbox_dir: Path) -> list[Path]:
    """The emails written to the local outbox (its index folder holds links to the same files)."""
    return sorted(outbox_dir.glob("*.eml")) if outbox_dir.exists() else []


def read_eml(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    return str(plain.get_content()), str(html.get_content())

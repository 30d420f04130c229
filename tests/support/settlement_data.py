"""Test data for the settle-balance flow, written straight into account partitions; and portal-call signing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from standardwebhooks.webhooks import Webhook

from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import (
    Account,
    Alert,
    AlertKind,
    Charge,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.partition import AccountPartition
from shared.domain.settle_balance import PaymentChoice, SettleCommand
from shared.settings import LOCAL_WEBHOOK_SECRET, Settings
from shared.storage.account_store import AccountStore
from tests.support.lifecycle_events import events_of, lifecycle_messages

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
FAILED_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ADMIN = "user-7"
VISA = "pm-visa-4242"
MASTERCARD = "pm-mc-5555"
INVOICE = "pm-invoice"


def settlement_settings(connection_string: str, outbox_dir: Path, **overrides: Any) -> Settings:
    return Settings(
        storage_connection_string=SecretStr(connection_string),
        outbox_dir=outbox_dir,
        lifecycle_queue=f"lifecycle-{uuid.uuid4().hex[:12]}",
        **overrides,
    )


def settlement_deps(connection_string: str, outbox_dir: Path, clock: FixedClock | None = None) -> Dependencies:
    return build(settlement_settings(connection_string, outbox_dir), clock=clock or FixedClock(NOW))


def charge(invoice_id: str, subscription_id: str, amount: str, method: str = VISA, **extra: Any) -> Charge:
    return Charge(
        invoice_id=invoice_id,
        subscription_id=subscription_id,
        service=extra.pop("service", "Azure"),
        amount=Money.parse(amount, "EUR"),
        due_date=extra.pop("due_date", date(2026, 11, 20)),
        payment_method_id=method,
        **extra,
    )


def past_due(subscription_id: str, name: str, method: str = VISA, service: str = "Azure") -> Subscription:
    return Subscription(
        id=subscription_id,
        name=name,
        service=service,
        payment_method_id=method,
        state=SubscriptionState.PAST_DUE,
        past_due_since=FAILED_AT,
    )


@dataclass
class AccountData:
    """One account's rows; `write` puts them into a fresh partition in one commit."""

    account: Account
    rows: list[BaseModel] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.account.id

    def write(self, store: AccountStore) -> AccountData:
        partition = AccountPartition(account_id=self.account.id)
        partition.set_account(self.account)
        partition.put(*self.rows)
        store.commit(partition)
        return self


def new_account_id() -> str:
    return f"acc-{uuid.uuid4().hex[:12]}"


def shared_card_account(account_id: str | None = None, *, locale: str = "en-US") -> AccountData:
    """Three subscriptions share a failed Visa: two owe money, one owes nothing yet; a Mastercard is on file.

    sub-a owes 49.95 and sub-b owes 20.00 on the Visa; sub-c uses the Visa without debt; sub-d pays by Mastercard.
    """
    account = Account(
        id=account_id or new_account_id(),
        admin_principal_id=ADMIN,
        notification_email="billing@contoso.example",
        locale=locale,
        currency="EUR",
    )
    visa = PaymentMethod(id=VISA, kind=PaymentMethodKind.CARD, brand="visa", last4="4242", gateway_token="tok_visa")
    mastercard = PaymentMethod(
        id=MASTERCARD, kind=PaymentMethodKind.CARD, brand="mastercard", last4="5555", gateway_token="tok_mastercard"
    )
    return AccountData(
        account,
        [
            visa.mark_failed(DeclineReason.INSUFFICIENT_FUNDS, FAILED_AT),
            mastercard,
            past_due("sub-a", "Production"),
            past_due("sub-b", "Dev/Test", service="Microsoft 365"),
            Subscription(id="sub-c", name="Sandbox", service="Azure", payment_method_id=VISA),
            Subscription(id="sub-d", name="Analytics", service="Azure", payment_method_id=MASTERCARD),
            charge("inv-1", "sub-a", "49.95"),
            charge("inv-2", "sub-b", "20.00", service="Microsoft 365", due_date=date(2026, 11, 18)),
            Alert(
                id="alert-pf-1",
                kind=AlertKind.PAYMENT_FAILED,
                payment_method_id=VISA,
                subscription_ids=("sub-a", "sub-b"),
                created_at=FAILED_AT,
            ),
        ],
    )


@dataclass
class PortalSigner:
    """Signs portal calls with the standardwebhooks package, an implementation independent of ours."""

    secret: str = LOCAL_WEBHOOK_SECRET
    at: datetime = NOW

    def headers(self, body: bytes, webhook_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
        moment = at or self.at
        try:
            signature = Webhook(self.secret).sign(webhook_id, moment, body.decode())
        except UnicodeDecodeError:  # the package signs text only; the construction is the same on raw bytes
            key = base64.b64decode(self.secret.removeprefix("whsec_"))
            signed = f"{webhook_id}.{int(moment.timestamp())}.".encode() + body
            signature = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(moment.timestamp())),
            "webhook-signature": signature,
            "content-type": "application/json",
        }


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def bound(payload: dict[str, Any], account_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
    """`payload` naming the route's account (and a settlement's Idempotency-Key), as the signature must bind them.

    Members the payload names itself win, so that a test can send a body bound to something else.
    """
    binding: dict[str, Any] = {"accountId": account_id}
    if idempotency_key is not None:
        binding["idempotencyKey"] = idempotency_key
    return {**binding, **payload}


def settle_body(
    subscription_id: str = "sub-a",
    *,
    payment_method: dict[str, Any] | None = None,
    amount: str = "69.95",
    currency: str = "EUR",
    principal_id: str = ADMIN,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "subscriptionId": subscription_id,
        "paymentMethod": payment_method or {"token": "tok_visa"},
        "expectedTotal": {"amount": amount, "currency": currency},
        **extra,
    }


def later(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def settle_command(account_id: str, key: str | None = None, **overrides: Any) -> SettleCommand:
    """A card payment of sub-a's whole balance (69.95 EUR) with a new Visa, unless told otherwise."""
    values: dict[str, Any] = {
        "account_id": account_id,
        "principal_id": ADMIN,
        "subscription_id": "sub-a",
        "payment": PaymentChoice(token="tok_visa"),
        "expected_total": Money.parse("69.95", "EUR"),
        "idempotency_key": key or f"key-{uuid.uuid4().hex}",
    }
    values.update(overrides)
    return SettleCommand(**values)


def lifecycle_events(deps: Dependencies) -> list[dict[str, Any]]:
    """The CloudEvents published so far on this test's own lifecycle queue."""
    connection_string = deps.settings.storage_connection_string.get_secret_value()
    return events_of(lifecycle_messages(connection_string, deps.settings.lifecycle_queue))


def sent_emails(deps: Dependencies) -> list[EmailMessage]:
    """Emails the local outbox sender wrote (one .eml per email actually sent)."""
    directory = deps.settings.outbox_dir
    if not directory.exists():
        return []
    return [
        BytesParser(policy=default_policy).parsebytes(path.read_bytes()) for path in sorted(directory.glob("*.eml"))
    ]

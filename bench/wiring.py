"""The function entry points called in-process, as the worker calls them, with the benchmark's dependencies."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import azure.functions as func
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest
from standardwebhooks.webhooks import Webhook

from bench.seeding import ADMIN
from shared import bootstrap
from shared.bootstrap import Dependencies
from shared.settings import LOCAL_WEBHOOK_SECRET


@contextmanager
def serving(deps: Dependencies) -> Iterator[None]:
    """Make the functions' process-wide `dependencies()` return `deps` (restored afterwards)."""
    from functions.payment_failed_queue import handler as queue_handler
    from functions.retention_timer import handler as timer_handler

    targets = [
        (bootstrap, "dependencies"),
        (bootstrap, "http_dependencies"),
        (queue_handler, "dependencies"),
        (timer_handler, "dependencies"),
    ]
    saved = [(module, name, getattr(module, name)) for module, name in targets if hasattr(module, name)]
    for module, name, _ in saved:
        setattr(module, name, lambda: deps)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def queue_message(document: dict[str, Any], dequeue_count: int = 1, message_id: str | None = None) -> QueueMessage:
    return QueueMessage(
        id=message_id or str(uuid.uuid4()),
        body=json.dumps(document).encode(),
        dequeue_count=dequeue_count,
        pop_receipt="bench",
    )


def timer_request() -> TimerRequest:
    return TimerRequest(past_due=False)


def signed_headers(body: bytes, at: datetime, secret: str = LOCAL_WEBHOOK_SECRET) -> dict[str, str]:
    """Standard Webhooks headers made with the standardwebhooks package, as the portal signs its calls."""
    webhook_id = f"msg_{uuid.uuid4().hex}"
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body.decode()),
        "content-type": "application/json",
    }


def settle_body(
    account_id: str,
    subscription_id: str,
    amount: str,
    *,
    principal_id: str,
    idempotency_key: str,
    token: str = "tok_visa",
) -> bytes:
    """A settlement body as the portal signs it: bound to its account and its Idempotency-Key."""
    payload = {
        "accountId": account_id,
        "principalId": principal_id,
        "idempotencyKey": idempotency_key,
        "subscriptionId": subscription_id,
        "paymentMethod": {"token": token},
        "expectedTotal": {"amount": amount, "currency": "EUR"},
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def settle_request(account_id: str, subscription_id: str, amount: str, at: datetime) -> func.HttpRequest:
    """A signed settlement call of `account_id`'s admin, with a fresh Idempotency-Key."""
    key = f"bench-{uuid.uuid4().hex}"
    body = settle_body(account_id, subscription_id, amount, principal_id=ADMIN, idempotency_key=key)
    return func.HttpRequest(
        method="POST",
        url=f"http://127.0.0.1/api/accounts/{account_id}/settlement",
        headers={**signed_headers(body, at), "idempotency-key": key},
        params={},
        route_params={"accountId": account_id},
        body=body,
    )


def base64_text(document: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(document).encode()).decode()

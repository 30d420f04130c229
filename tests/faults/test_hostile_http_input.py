"""Hostile input against the settle-balance API through the local host: OData-injection strings in every id field,
oversized bodies, wrong types, unicode edge cases, forged and replayed webhook signatures.

Every answer is a clear 4xx (problem+json when the app answers), storage is unchanged (only the webhook-id ledger
remembers the signed calls), and no answer carries a stack trace or another account's data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

import pytest
from azure.data.tables import TableServiceClient

from devhost.azurite import AzuriteProcess
from shared.domain.lifecycle import SubscriptionState, TransitionReason
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
from shared.settings import LOCAL_WEBHOOK_SECRET
from shared.storage.account_store import AccountStore
from shared.storage.layout import ALL_TABLES, WEBHOOKS_TABLE
from shared.storage.tables import TableStorage
from tests.faults.local_host import FUNCTION_KEY, LocalHost, start_local_host
from tests.faults.published import publish
from tests.support.raw_http import RawAnswer, exchange, framing_counts

pytestmark = [pytest.mark.azurite, pytest.mark.e2e]

FAILED_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
VICTIM_EMAIL = "victim-billing@contoso.example"
VICTIM_SUBSCRIPTION_NAME = "Victim Confidential Workload"
VICTIM_AMOUNT = "123.45"
VICTIM_ADMIN = "admin-victim"
ATTACKER_ADMIN = "admin-attacker"
ROUTES = ("overview", "settlement/quote", "settlement", "notification-email")
INJECTIONS = {
    "odata-or": "' or 1 eq 1",
    "odata-ne": "PartitionKey ne ''",
    "odata-break-out": "x' or PartitionKey ne 'x",
    "odata-and-rowkey": "' and RowKey ge '",
    "nul": "\x00",
    "embedded-nul": "acc\x00victim",
    "rtl-marks": "\u202eacc-1\u2066\u200f",
    "astral": "\U0001d518\U0001f4a9\U00010000",
    "very-long": "a" * 5000,
    "path-traversal": "../../accounts",
    "percent-nul": "%00",
    "wildcard": "*",
    "crlf": "acc\r\nX-Injected: 1",
    "lone-surrogate": "\ud800",
}
LEAK_MARKERS = ("Traceback", 'File "', VICTIM_EMAIL, VICTIM_SUBSCRIPTION_NAME, VICTIM_AMOUNT, VICTIM_ADMIN)


def account_partition(account_id: str, admin: str, email: str, name: str, amount: str, prefix: str) -> AccountPartition:
    partition = AccountPartition(account_id=account_id)
    partition.set_account(
        Account(id=account_id, admin_principal_id=admin, notification_email=email, locale="en-US", currency="EUR")
    )
    card = PaymentMethod(
        id=f"pm-{prefix}", kind=PaymentMethodKind.CARD, brand="visa", last4="4242", gateway_token="tok_visa"
    ).mark_failed(DeclineReason.INSUFFICIENT_FUNDS, FAILED_AT)
    subscription = Subscription(id=f"sub-{prefix}-1", name=name, service="Azure", payment_method_id=card.id).transition(
        SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, FAILED_AT
    )
    partition.put(
        card,
        subscription,
        Charge(
            invoice_id=f"inv-{prefix}-1",
            subscription_id=subscription.id,
            service="Azure",
            amount=Money.parse(amount, "EUR"),
            due_date=date(2026, 11, 20),
            payment_method_id=card.id,
        ),
        Alert(
            id=f"payment-failed:{card.id}",
            kind=AlertKind.PAYMENT_FAILED,
            payment_method_id=card.id,
            subscription_ids=(subscription.id,),
            created_at=FAILED_AT,
        ),
    )
    return partition


def sign(
    body: bytes, *, secret: str = LOCAL_WEBHOOK_SECRET, webhook_id: str | None = None, at: int | None = None
) -> dict[str, str]:
    """Standard Webhooks signature, computed here from the specification (HMAC-SHA256 over id.timestamp.body)."""
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = at if at is not None else int(time.time())
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


def as_json(payload: Any) -> bytes:
    return json.dumps(payload).encode()


@dataclass
class Call:
    name: str
    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    signed: bool = True
    function_key: bool = True
    app_answers: bool = True  # False where the host itself refuses (function key, unknown route, URL length)
    expected: frozenset[int] | None = None


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


def send(host: LocalHost, call: Call) -> Answer:
    headers = {"content-type": "application/json", **call.headers}
    if call.signed:
        headers = {**sign(call.body), **headers}
    if call.function_key:
        headers["x-functions-key"] = FUNCTION_KEY
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    try:
        connection.request("POST", call.path, body=call.body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, response.getheader("content-type") or "", response.read())
    finally:
        connection.close()


@dataclass
class World:
    host: LocalHost
    storage: TableStorage
    attacker: str
    victim: str
    attacker_other: str  # another account with the attacker's admin


@pytest.fixture(scope="module")
def world(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    storage = TableStorage(azurite.connection_string)
    storage.ensure_tables()
    store = AccountStore(storage)
    run = uuid.uuid4().hex[:10]
    victim, attacker, attacker_other = f"acc-victim-{run}", f"acc-attacker-{run}", f"acc-attacker2-{run}"
    store.commit(account_partition(victim, VICTIM_ADMIN, VICTIM_EMAIL, VICTIM_SUBSCRIPTION_NAME, VICTIM_AMOUNT, "v"))
    store.commit(
        account_partition(attacker, ATTACKER_ADMIN, "attacker@contoso.example", "Attacker Workload", "10.00", "a")
    )
    store.commit(
        account_partition(attacker_other, ATTACKER_ADMIN, "attacker@contoso.example", "Second Workload", "10.00", "b")
    )
    directory = tmp_path_factory.mktemp("hostile")
    host = start_local_host(azurite.connection_string, directory / "host", directory / "outbox")
    try:
        yield World(host, storage, attacker, victim, attacker_other)
    finally:
        host.stop()


def snapshot(storage: TableStorage) -> dict[tuple[str, str, str], str]:
    """Every entity of every table but the webhook-id ledger, by key, with its ETag (any write changes it)."""
    service: TableServiceClient = storage.service
    rows = {}
    for table in ALL_TABLES:
        if table == WEBHOOKS_TABLE:
            continue
        for entity in service.get_table_client(table).list_entities():
            rows[(table, str(entity["PartitionKey"]), str(entity["RowKey"]))] = str(entity.metadata["etag"])
    return rows


def valid_bodies(principal: str, subscription: str, account_id: str, key: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A valid body per route, bound (as a portal signs it) to `account_id` and the Idempotency-Key header `key`."""
    bound = {"accountId": account_id, "principalId": principal}
    return {
        "overview": dict(bound),
        "settlement/quote": {**bound, "subscriptionId": subscription},
        "settlement": {
            **bound,
            "idempotencyKey": key["idempotency-key"],
            "subscriptionId": subscription,
            "paymentMethod": {"token": "tok_visa"},
            "expectedTotal": {"amount": "10.00", "currency": "EUR"},
        },
        "notification-email": dict(bound),
    }


def with_value(document: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    target = copy
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return copy


def injection_calls(world: World) -> list[Call]:
    calls: list[Call] = []
    key = {"idempotency-key": f"hostile-{uuid.uuid4().hex}"}
    bodies = valid_bodies(ATTACKER_ADMIN, "sub-a-1", world.attacker, key)
    for label, value in INJECTIONS.items():
        for route in ROUTES:
            path = f"/api/accounts/{quote(value, safe='', errors='surrogatepass')}/{route}"
            # An id that cannot exist is not found, never queried; the host itself refuses over-long URLs.
            calls.append(
                Call(f"path accountId {label} ({route})", path, as_json(bodies[route]), dict(key), app_answers=False)
            )
        fields: list[tuple[str, tuple[str, ...]]] = [
            ("overview", ("principalId",)),
            ("settlement/quote", ("principalId",)),
            ("settlement/quote", ("subscriptionId",)),
            ("settlement/quote", ("paymentMethodId",)),
            ("settlement", ("principalId",)),
            ("settlement", ("subscriptionId",)),
            ("settlement", ("paymentMethod", "id")),
            ("settlement", ("paymentMethod", "token")),
            ("settlement", ("expectedTotal", "amount")),
            ("settlement", ("expectedTotal", "currency")),
            ("notification-email", ("principalId",)),
            ("notification-email", ("notificationEmail",)),
        ]
        for route, member in fields:
            body = with_value(bodies[route], member, value)
            if member == ("paymentMethod", "id"):
                body["paymentMethod"].pop("token")
            calls.append(
                Call(
                    f"body {'.'.join(member)} {label} ({route})",
                    f"/api/accounts/{world.attacker}/{route}",
                    as_json(body),
                    dict(key),
                    expected=frozenset({422}),
                )
            )
        if value.isascii() and value.isprintable():
            calls.append(
                Call(
                    f"header Idempotency-Key {label}",
                    f"/api/accounts/{world.attacker}/settlement",
                    as_json(with_value(bodies["settlement"], ("expectedTotal", "amount"), "10.00")),
                    # A space inside: HTTP drops whitespace around a header value (RFC 9110 5.5), not within it.
                    {"idempotency-key": value + " !" if label != "very-long" else value},
                    expected=frozenset({400}),
                )
            )
    return calls


def cross_account_calls(world: World) -> list[Call]:
    key = {"idempotency-key": f"hostile-{uuid.uuid4().hex}"}
    victim_bodies = valid_bodies(ATTACKER_ADMIN, "sub-v-1", world.victim, key)
    calls = [
        Call(
            f"attacker on victim's account ({route})",
            f"/api/accounts/{world.victim}/{route}",
            as_json(victim_bodies[route]),
            dict(key),
            expected=frozenset({403}),
        )
        for route in ROUTES
    ]
    calls.append(
        Call(
            "change victim's notification email",
            f"/api/accounts/{world.victim}/notification-email",
            as_json(
                {"accountId": world.victim, "principalId": ATTACKER_ADMIN, "notificationEmail": "evil@attacker.example"}
            ),
            expected=frozenset({403}),
        )
    )
    own = valid_bodies(ATTACKER_ADMIN, "sub-v-1", world.attacker, key)
    for route in ("settlement/quote", "settlement"):
        calls.append(
            Call(
                f"victim's subscription on attacker's account ({route})",
                f"/api/accounts/{world.attacker}/{route}",
                as_json(own[route]),
                dict(key),
                expected=frozenset({404}),
            )
        )
    pay_with_victim_card = with_value(
        valid_bodies(ATTACKER_ADMIN, "sub-a-1", world.attacker, key)["settlement"], ("paymentMethod",), {"id": "pm-v"}
    )
    calls.append(
        Call(
            "pay with the victim's card",
            f"/api/accounts/{world.attacker}/settlement",
            as_json(pay_with_victim_card),
            dict(key),
            expected=frozenset({404}),
        )
    )
    return calls


def binding_calls(world: World) -> list[Call]:
    """Signed bodies taken to another account's route, or to another Idempotency-Key, are refused."""
    key = {"idempotency-key": f"hostile-{uuid.uuid4().hex}"}
    own = valid_bodies(ATTACKER_ADMIN, "sub-a-1", world.attacker, key)
    mismatch = frozenset({422})
    calls = [
        Call(
            f"body signed for another account of the same admin ({route})",
            f"/api/accounts/{world.attacker_other}/{route}",
            as_json(own[route]),
            dict(key),
            expected=mismatch,
        )
        for route in ROUTES
    ]
    calls += [
        Call(
            f"body naming no account ({route})",
            f"/api/accounts/{world.attacker}/{route}",
            as_json({name: value for name, value in own[route].items() if name != "accountId"}),
            dict(key),
            expected=mismatch,
        )
        for route in ROUTES
    ]
    calls.append(
        Call(
            "settlement signed for one Idempotency-Key sent with another",
            f"/api/accounts/{world.attacker}/settlement",
            as_json(own["settlement"]),
            {"idempotency-key": f"hostile-other-{uuid.uuid4().hex}"},
            expected=mismatch,
        )
    )
    calls.append(
        Call(
            "settlement naming no Idempotency-Key",
            f"/api/accounts/{world.attacker}/settlement",
            as_json({name: value for name, value in own["settlement"].items() if name != "idempotencyKey"}),
            dict(key),
            expected=mismatch,
        )
    )
    return calls


def malformed_calls(world: World) -> list[Call]:
    key = {"idempotency-key": f"hostile-{uuid.uuid4().hex}"}
    settle = valid_bodies(ATTACKER_ADMIN, "sub-a-1", world.attacker, key)["settlement"]
    path = f"/api/accounts/{world.attacker}/settlement"
    variants: dict[str, Any] = {
        "principalId number": with_value(settle, ("principalId",), 123),
        "principalId bool": with_value(settle, ("principalId",), True),
        "principalId null": with_value(settle, ("principalId",), None),
        "principalId array": with_value(settle, ("principalId",), [ATTACKER_ADMIN]),
        "principalId object": with_value(settle, ("principalId",), {"$ne": ""}),
        "subscriptionId float": with_value(settle, ("subscriptionId",), 1.5),
        "expectedTotal string": with_value(settle, ("expectedTotal",), "10.00"),
        "amount number": with_value(settle, ("expectedTotal", "amount"), 10.0),
        "amount negative": with_value(settle, ("expectedTotal", "amount"), "-10.00"),
        "amount exponent": with_value(settle, ("expectedTotal", "amount"), "1e3"),
        "amount NaN": with_value(settle, ("expectedTotal", "amount"), "NaN"),
        "amount too precise": with_value(settle, ("expectedTotal", "amount"), "10.001"),
        "amount huge": with_value(settle, ("expectedTotal", "amount"), "9" * 400),
        "currency unknown": with_value(settle, ("expectedTotal", "currency"), "XXX"),
        "currency lower case": with_value(settle, ("expectedTotal", "currency"), "eur"),
        "two payment methods": with_value(settle, ("paymentMethod",), {"id": "pm-a", "token": "tok_visa"}),
        "no payment method": with_value(settle, ("paymentMethod",), {}),
        "unknown member": {**settle, "isAdmin": True},
        "many members": {**settle, **{f"x{n}": n for n in range(2000)}},
    }
    calls = [
        Call(f"wrong type: {name}", path, as_json(body), dict(key), expected=frozenset({422}))
        for name, body in variants.items()
    ]
    raw_bodies: dict[str, tuple[bytes, frozenset[int]]] = {
        "array body": (b"[]", frozenset({400})),
        "null body": (b"null", frozenset({400})),
        "string body": (b'"text"', frozenset({400})),
        "truncated JSON": (b'{"principalId": "admin-attacker"', frozenset({400})),
        "empty body": (b"", frozenset({400})),
        "invalid UTF-8": (b'{"principalId": "\xff\xfe"}', frozenset({400})),
        "NUL bytes": (b'{"principalId": "admin\x00attacker"}', frozenset({400})),
        "escaped lone surrogate": (b'{"principalId": "\\ud800"}', frozenset({422})),
        "escaped NUL": (b'{"principalId": "admin\\u0000attacker"}', frozenset({422})),
        "duplicate members": (
            b'{"principalId": "admin-attacker", "principalId": "admin-victim"}',
            frozenset({403, 422}),
        ),
    }
    calls += [
        Call(f"malformed: {name}", path, body, dict(key), expected=expected)
        for name, (body, expected) in raw_bodies.items()
    ]
    calls.append(
        Call(
            "content type text/plain",
            path,
            as_json(settle),
            {**key, "content-type": "text/plain"},
            expected=frozenset({415}),
        )
    )
    padding = "x" * (64 * 1024)
    calls.append(
        Call("body over 64 KiB", path, as_json({**settle, "padding": padding}), dict(key), expected=frozenset({413}))
    )
    calls.append(
        Call("body of 3 MiB", path, b"{" + b" " * (3 * 1024 * 1024) + b"}", dict(key), expected=frozenset({413}))
    )
    return calls


UNUSABLE_ADDRESSES = {
    "NUL": "billing\x00@contoso.example",
    "control character": "billing\x08@contoso.example",
    "comma": "billing,evil@attacker.example",
    "semicolon": "billing;evil@attacker.example",
    "two dots": "billing..team@contoso.example",
    "leading dot": ".billing@contoso.example",
    "numeric domain": "a@1.2",
    "encoded word": "=?utf-8?q?evil?=@attacker.example",
    "display name": "Billing <billing@contoso.example>",
    "address list": "billing@contoso.example, evil@attacker.example",
}


def unreadable_input_calls(world: World) -> list[Call]:
    """Addresses the mailer cannot use (422 at the member), and a number too long for Python to read (400)."""
    path = f"/api/accounts/{world.attacker}/notification-email"
    calls = [
        Call(
            f"unusable address: {kind}",
            path,
            as_json({"accountId": world.attacker, "principalId": ATTACKER_ADMIN, "notificationEmail": address}),
            expected=frozenset({422}),
        )
        for kind, address in UNUSABLE_ADDRESSES.items()
    ]
    huge_number = b'{"principalId": "' + ATTACKER_ADMIN.encode() + b'", "n": ' + b"9" * 4301 + b"}"
    for route in ROUTES:
        calls.append(
            Call(
                f"number of 4,301 digits ({route})",
                f"/api/accounts/{world.attacker}/{route}",
                huge_number,
                {"idempotency-key": f"hostile-{uuid.uuid4().hex}"},
                expected=frozenset({400}),
            )
        )
    return calls


def signature_calls(world: World) -> list[Call]:
    body = as_json({"accountId": world.attacker, "principalId": ATTACKER_ADMIN})
    path = f"/api/accounts/{world.attacker}/overview"
    now = int(time.time())
    other_secret = "whsec_" + base64.b64encode(os.urandom(32)).decode()
    forged = "v1," + base64.b64encode(os.urandom(32)).decode()
    valid = sign(body)
    unauthentic = frozenset({401})
    return [
        Call("no signature headers", path, body, signed=False, expected=unauthentic),
        Call(
            "forged signature", path, body, {**valid, "webhook-signature": forged}, signed=False, expected=unauthentic
        ),
        Call(
            "signed with another secret",
            path,
            body,
            sign(body, secret=other_secret),
            signed=False,
            expected=unauthentic,
        ),
        Call(
            "signature of another body",
            path,
            body,
            sign(b'{"principalId": "admin-victim"}'),
            signed=False,
            expected=unauthentic,
        ),
        Call("timestamp an hour old", path, body, sign(body, at=now - 3600), signed=False, expected=unauthentic),
        Call("timestamp an hour ahead", path, body, sign(body, at=now + 3600), signed=False, expected=unauthentic),
        Call(
            "timestamp not a number",
            path,
            body,
            {**valid, "webhook-timestamp": "soon"},
            signed=False,
            expected=unauthentic,
        ),
        Call(
            "signature not base64",
            path,
            body,
            {**valid, "webhook-signature": "v1,!!!not-base64!!!"},
            signed=False,
            expected=unauthentic,
        ),
        Call(
            "unknown signature scheme",
            path,
            body,
            {**valid, "webhook-signature": valid["webhook-signature"].replace("v1,", "v2,")},
            signed=False,
            expected=unauthentic,
        ),
        Call(
            "too many signatures",
            path,
            body,
            {**valid, "webhook-signature": " ".join([forged] * 17)},
            signed=False,
            expected=unauthentic,
        ),
        Call(
            "webhook-id not ASCII",
            path,
            body,
            {**sign(body, webhook_id="msg_\xe9t\xe9")},
            signed=False,
            expected=unauthentic,
        ),
        Call("no function key", path, body, function_key=False, app_answers=False, expected=frozenset({401})),
    ]


def leaked_markers(answer: Answer) -> list[str]:
    text = answer.body.decode("utf-8", errors="replace")
    return [marker for marker in LEAK_MARKERS if marker in text]


def check(call: Call, answer: Answer) -> list[str]:
    """What is wrong with one answer; empty when it is a clear, leak-free refusal."""
    problems = []
    if not 400 <= answer.status < 500:
        problems.append(f"status {answer.status}")
    if call.expected is not None and answer.status not in call.expected:
        problems.append(f"status {answer.status}, expected {sorted(call.expected)}")
    text = answer.body.decode("utf-8", errors="replace")
    problems += [f"leaks {marker!r}" for marker in leaked_markers(answer)]
    if call.app_answers or answer.content_type.startswith("application/problem+json"):
        if not answer.content_type.startswith("application/problem+json"):
            problems.append(f"content type {answer.content_type!r}")
        else:
            document = json.loads(answer.body)
            if document.get("status") != answer.status or not document.get("title") or not document.get("type"):
                problems.append(f"not a problem document: {text[:200]}")
    return problems


def test_hostile_calls_get_clear_refusals_change_nothing_and_leak_nothing(world: World) -> None:
    calls = (
        injection_calls(world)
        + cross_account_calls(world)
        + binding_calls(world)
        + malformed_calls(world)
        + unreadable_input_calls(world)
        + signature_calls(world)
    )
    before = snapshot(world.storage)

    failures = {}
    answers = []
    for call in calls:
        answer = send(world.host, call)
        answers.append(answer)
        problems = check(call, answer)
        if problems:
            failures[call.name] = problems
    after = snapshot(world.storage)

    assert failures == {}
    assert after == before
    assert "Traceback" not in world.host.log_text()
    publish(
        "hostile_http_input",
        {
            "calls": len(answers),
            "statuses": dict(sorted(Counter(answer.status for answer in answers).items())),
            "storage_changes": len({key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}),
            "leaks": sum(1 for answer in answers if leaked_markers(answer)),
            "server_errors": sum(1 for answer in answers if answer.status >= 500),
        },
    )


def test_a_webhook_id_replayed_with_another_body_is_refused_and_changes_nothing(world: World) -> None:
    path = f"/api/accounts/{world.attacker}/overview"
    first = as_json({"accountId": world.attacker, "principalId": ATTACKER_ADMIN})
    headers = sign(first)
    before = snapshot(world.storage)

    original = send(world.host, Call("original", path, first, headers, signed=False))
    same_again = send(world.host, Call("retry", path, first, headers, signed=False))
    replayed_body = as_json({"accountId": world.victim, "principalId": VICTIM_ADMIN})
    replayed = send(
        world.host,
        Call(
            "replay",
            f"/api/accounts/{world.victim}/overview",
            replayed_body,
            sign(replayed_body, webhook_id=headers["webhook-id"]),
            signed=False,
        ),
    )

    assert original.status == 200
    assert same_again.status == 200  # the same request again is a retry, answered alike
    assert replayed.status == 409
    assert check(Call("replay", path, replayed_body, expected=frozenset({409})), replayed) == []
    assert snapshot(world.storage) == before


def test_deeply_nested_json_within_the_size_limit_is_a_clear_400(world: World) -> None:
    body = b"[" * 30_000 + b"]" * 30_000
    call = Call("deep nesting", f"/api/accounts/{world.attacker}/overview", body, expected=frozenset({400}))

    answer = send(world.host, call)

    assert check(call, answer) == []


# Framing the HTTP parser sees before the app does; the wait outlasts the host's body timeout, so a hang fails.
RAW_WAIT_SECONDS = 30.0
RAW_FRAMING: dict[str, tuple[str, bytes, int]] = {
    "chunk size -1": ("Transfer-Encoding: chunked\r\n", b"-1\r\n" + b"x" * 4096, 400),
    "chunk size not hexadecimal": ("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n", 400),
    "chunk size with a sign": ("Transfer-Encoding: chunked\r\n", b"+2\r\n{}\r\n0\r\n\r\n", 400),
    "Content-Length -1": ("Content-Length: -1\r\n", b"x" * 4096, 400),
    "Content-Length not a number": ("Content-Length: ten\r\n", b"{}", 400),
    "two differing Content-Lengths": ("Content-Length: 2\r\nContent-Length: 3\r\n", b"{}", 400),
    "Content-Length and chunked": ("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n", 400),
    "Content-Length past the limit": ("Content-Length: 200000000\r\n", b"{", 413),
    "body shorter than its Content-Length": ("Content-Length: 100\r\n", b'{"principalId"', 408),
    "chunked body that stops": ("Transfer-Encoding: chunked\r\n", b'10\r\n{"principal', 408),
}


def raw_request(world: World, framing: str, body: bytes) -> bytes:
    head = (
        f"POST /api/accounts/{world.attacker}/overview HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nx-functions-key: {FUNCTION_KEY}\r\n{framing}\r\n"
    )
    return head.encode() + body


def test_bad_body_framing_is_a_clear_4xx_never_a_hang_a_dropped_connection_or_a_traceback(world: World) -> None:
    def attempt(case: tuple[str, bytes, int]) -> RawAnswer:
        framing, body, _ = case
        return exchange(world.host.port, raw_request(world, framing, body), wait=RAW_WAIT_SECONDS)

    with ThreadPoolExecutor(len(RAW_FRAMING)) as pool:
        answers = dict(zip(RAW_FRAMING, pool.map(attempt, RAW_FRAMING.values()), strict=True))

    outcomes = {name: "hung" if a.timed_out else a.status for name, a in answers.items()}
    publish("hostile_http_framing", framing_counts(outcomes))
    assert outcomes == {name: expected for name, (_, _, expected) in RAW_FRAMING.items()}
    shown = b"".join(answer.body for answer in answers.values()).decode(errors="replace")
    assert [marker for marker in LEAK_MARKERS if marker in shown] == []
    assert "Traceback" not in world.host.log_text()
    body = as_json({"accountId": world.attacker, "principalId": ATTACKER_ADMIN})
    assert send(world.host, Call("after", f"/api/accounts/{world.attacker}/overview", body)).status == 200


def test_the_host_header_cannot_make_a_replayed_webhook_id_pass_for_its_original_request(world: World) -> None:
    original_path = f"/api/accounts/{world.attacker}/overview"
    body = as_json({"accountId": world.attacker, "principalId": ATTACKER_ADMIN})
    headers = sign(body)
    # The same signed body and webhook id on another route, dressed up so the request URL would name the original.
    disguise = {"host": f"127.0.0.1:{world.host.port}{original_path}#"}

    original = send(world.host, Call("original", original_path, body, headers, signed=False))
    other_route = f"/api/accounts/{world.attacker}/notification-email"
    replayed = send(world.host, Call("replay", other_route, body, {**headers, **disguise}, signed=False))

    assert original.status == 200
    assert replayed.status == 409
    assert check(Call("replay", original_path, body, expected=frozenset({409})), replayed) == []

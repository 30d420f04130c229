from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from portal.api import ApiProblem, SettleApi
from portal.signing import SigningKeyError, new_webhook_id, signing_key, webhook_headers
from shared.domain.clock import FixedClock
from shared.settings import LOCAL_WEBHOOK_SECRET
from shared.webhooks import WebhookVerifier
from tests.support.portal_api_stub import ApiStub, running_api_stub

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z


def test_signed_headers_verify_with_the_standardwebhooks_package() -> None:
    body = json.dumps({"principalId": "user-7"}).encode()
    headers = webhook_headers(signing_key(SECRET), "msg_1", int(time.time()), body)

    assert Webhook(SECRET).verify(body, headers) == {"principalId": "user-7"}


def test_a_changed_body_no_longer_verifies() -> None:
    headers = webhook_headers(signing_key(SECRET), "msg_1", int(time.time()), b'{"a":1}')

    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b'{"a":2}', headers)


def test_another_secret_does_not_verify() -> None:
    headers = webhook_headers(signing_key(SECRET), "msg_1", int(time.time()), b"{}")

    with pytest.raises(WebhookVerificationError):
        Webhook(LOCAL_WEBHOOK_SECRET).verify(b"{}", headers)


def test_signature_matches_the_package_byte_for_byte() -> None:
    body = '{"principalId":"user-9","subscriptionId":"sub-x"}'
    expected = Webhook(SECRET).sign("msg_2", datetime.fromtimestamp(NOW, UTC), body)

    assert webhook_headers(signing_key(SECRET), "msg_2", NOW, body.encode())["webhook-signature"] == expected


def test_signed_headers_pass_the_function_apps_own_verifier() -> None:
    clock = FixedClock(datetime.fromtimestamp(NOW, UTC))
    verifier = WebhookVerifier(LOCAL_WEBHOOK_SECRET, tolerance=timedelta(minutes=5), clock=clock)
    headers = webhook_headers(signing_key(LOCAL_WEBHOOK_SECRET), "msg_3", NOW, b"{}")

    assert verifier.verify(headers, b"{}").id == "msg_3"


def test_an_unpadded_secret_is_read_like_the_package_reads_it() -> None:
    unpadded = LOCAL_WEBHOOK_SECRET.rstrip("=")

    assert signing_key(unpadded) == signing_key(LOCAL_WEBHOOK_SECRET)


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "whsec_===="])
def test_a_malformed_secret_is_refused(secret: str) -> None:
    with pytest.raises(SigningKeyError):
        signing_key(secret)


def test_webhook_ids_are_unique_and_printable() -> None:
    ids = {new_webhook_id() for _ in range(100)}

    assert len(ids) == 100
    assert all(i.startswith("msg_") and i.isascii() and i.isprintable() for i in ids)


@pytest.fixture
def stub_api() -> Iterator[ApiStub]:
    with running_api_stub() as stub:
        yield stub


def client(stub: ApiStub) -> SettleApi:
    return SettleApi(stub.url, signing_key=signing_key(SECRET), function_key="the-key")


def test_a_settlement_call_is_a_signed_post_with_function_key_and_idempotency_key(stub_api: ApiStub) -> None:
    stub_api.answer("settlement", {"settlementId": "stl-1", "status": "succeeded"})

    answer = client(stub_api).settle(
        "acc-1001",
        "user-7",
        subscription_id="sub-a",
        payment_method={"token": "tok_visa"},
        expected_total={"amount": "62.45", "currency": "EUR"},
        idempotency_key="key-1",
    )

    assert answer == {"settlementId": "stl-1", "status": "succeeded"}
    (call,) = stub_api.calls
    assert call.path == "/api/accounts/acc-1001/settlement"
    assert call.headers["x-functions-key"] == "the-key"
    assert call.headers["idempotency-key"] == "key-1"
    assert call.headers["content-type"] == "application/json"
    assert Webhook(SECRET).verify(call.body, call.headers) == {
        "accountId": "acc-1001",
        "principalId": "user-7",
        "idempotencyKey": "key-1",
        "subscriptionId": "sub-a",
        "paymentMethod": {"token": "tok_visa"},
        "expectedTotal": {"amount": "62.45", "currency": "EUR"},
    }


def test_each_call_carries_its_own_webhook_id(stub_api: ApiStub) -> None:
    stub_api.answer("overview", {"subscriptions": [], "alerts": []})
    api = client(stub_api)

    api.overview("acc-1001", "user-7")
    api.overview("acc-1001", "user-7")

    assert stub_api.calls[0].headers["webhook-id"] != stub_api.calls[1].headers["webhook-id"]


def test_routes_and_bodies_follow_the_api_contract(stub_api: ApiStub) -> None:
    for route in ("overview", "settlement/quote", "notification-email"):
        stub_api.answer(route, {})
    api = client(stub_api)

    api.overview("acc 1", "user-7")
    api.quote("acc-1001", "user-7", "sub-a", "pm-mc-5555")
    api.quote("acc-1001", "user-7", "sub-a")
    api.notification_email("acc-1001", "user-7")
    api.notification_email("acc-1001", "user-7", "ap@example.com")

    assert [(c.path, json.loads(c.body)) for c in stub_api.calls] == [
        ("/api/accounts/acc%201/overview", {"accountId": "acc 1", "principalId": "user-7"}),
        (
            "/api/accounts/acc-1001/settlement/quote",
            {
                "accountId": "acc-1001",
                "principalId": "user-7",
                "subscriptionId": "sub-a",
                "paymentMethodId": "pm-mc-5555",
            },
        ),
        (
            "/api/accounts/acc-1001/settlement/quote",
            {"accountId": "acc-1001", "principalId": "user-7", "subscriptionId": "sub-a"},
        ),
        ("/api/accounts/acc-1001/notification-email", {"accountId": "acc-1001", "principalId": "user-7"}),
        (
            "/api/accounts/acc-1001/notification-email",
            {"accountId": "acc-1001", "principalId": "user-7", "notificationEmail": "ap@example.com"},
        ),
    ]


def test_a_problem_answer_becomes_an_api_problem_with_its_fields(stub_api: ApiStub) -> None:
    stub_api.answer(
        "overview",
        {
            "type": "about:blank",
            "title": "Invalid request",
            "status": 422,
            "detail": "expectedTotal.amount is not a decimal",
            "errors": [{"detail": "not a decimal string", "pointer": "#/expectedTotal/amount"}],
        },
        status=422,
    )

    with pytest.raises(ApiProblem) as raised:
        client(stub_api).overview("acc-1001", "user-7")

    assert raised.value.status == 422
    assert raised.value.title == "Invalid request"
    assert raised.value.fields[0].field == "expectedTotal.amount"


def test_a_stale_quote_answer_carries_the_new_quote(stub_api: ApiStub) -> None:
    quote = {"quoteVersion": "q1-b", "total": {"amount": "72.45", "currency": "EUR"}, "lines": []}
    stub_api.answer("overview", {"title": "The total changed", "status": 409, "quote": quote}, status=409)

    with pytest.raises(ApiProblem) as raised:
        client(stub_api).overview("acc-1001", "user-7")

    assert raised.value.new_quote == quote


def test_an_unreachable_api_is_a_502_problem_naming_the_address() -> None:
    api = SettleApi("http://127.0.0.1:9/api", signing_key=signing_key(SECRET), function_key="k", timeout=2)

    with pytest.raises(ApiProblem) as raised:
        api.overview("acc-1001", "user-7")

    assert raised.value.status == 502
    assert "127.0.0.1:9" in raised.value.detail

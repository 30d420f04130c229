"""The settle-balance HTTP functions called with real func.HttpRequest objects, against Azurite."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func
import pytest

from functions.settle_http import routes
from shared.bootstrap import Dependencies
from shared.domain.settlement import Settlement, SettlementStatus
from tests.support.settlement_data import (
    ADMIN,
    MASTERCARD,
    NOW,
    VISA,
    AccountData,
    PortalSigner,
    body_of,
    bound,
    settle_body,
    shared_card_account,
)

pytestmark = pytest.mark.azurite

Function = Callable[[func.HttpRequest], func.HttpResponse]
ROUTES: dict[str, tuple[Function, str]] = {
    "overview": (routes.overview, "overview"),
    "quote": (routes.quote, "settlement/quote"),
    "settle": (routes.settle, "settlement"),
    "notification-email": (routes.notification_email_route, "notification-email"),
}


@pytest.fixture
def signer() -> PortalSigner:
    return PortalSigner()


def request(
    route: str,
    account_id: str,
    payload: dict[str, Any] | bytes,
    *,
    headers: dict[str, str] | None = None,
    signer: PortalSigner | None = None,
    webhook_id: str | None = None,
) -> func.HttpRequest:
    key = (headers or {}).get("Idempotency-Key")
    raw = payload if isinstance(payload, bytes) else body_of(bound(payload, account_id, key))
    signed = (signer or PortalSigner()).headers(raw, webhook_id)
    path = ROUTES[route][1]
    return func.HttpRequest(
        method="POST",
        url=f"http://localhost:7071/api/accounts/{account_id}/{path}",
        headers={**signed, **(headers or {})},
        params={},
        route_params={"accountId": account_id},
        body=raw,
    )


def call(route: str, account_id: str, payload: dict[str, Any] | bytes, **options: Any) -> func.HttpResponse:
    return ROUTES[route][0](request(route, account_id, payload, **options))


def settle(account_id: str, payload: dict[str, Any], key: str = "key-1", **options: Any) -> func.HttpResponse:
    headers = {"Idempotency-Key": key, **options.pop("headers", {})}
    return call("settle", account_id, payload, headers=headers, **options)


def body(response: func.HttpResponse) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def assert_problem(response: func.HttpResponse, status: int, slug: str, **where: str) -> dict[str, Any]:
    assert response.status_code == status, response.get_body()
    assert response.mimetype == "application/problem+json"
    problem = body(response)
    assert problem["type"].endswith(f"/problems/{slug}")
    assert problem["status"] == status
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    for key, value in where.items():
        assert any(error.get(key) == value for error in problem["errors"]), problem["errors"]
    return problem


# --- the happy paths and their fixed fields -------------------------------------------------------------------


def test_health_answers_anonymously_without_storage() -> None:
    response = routes.health(func.HttpRequest(method="GET", url="http://localhost/api/health", body=b""))

    assert (response.status_code, body(response)) == (200, {"status": "ok"})


def test_the_routes_are_registered_with_their_fixed_names_methods_and_auth_levels() -> None:
    app = func.FunctionApp()  # a fresh app: the worker indexes an app once, and other tests index function_app's
    app.register_functions(routes.bp)
    http = {f.get_function_name(): f.get_trigger() for f in app.get_functions()}
    routes_by_name = {name: (t.route, str(t.auth_level), [str(m) for m in t.methods]) for name, t in http.items()}

    assert routes_by_name["health"][0] == "health"
    assert "ANONYMOUS" in routes_by_name["health"][1]
    support = {"account_hold", "account_release"}
    assert {route for name, (route, _, _) in routes_by_name.items() if name not in {"health", *support}} == {
        "accounts/{accountId}/overview",
        "accounts/{accountId}/settlement/quote",
        "accounts/{accountId}/settlement",
        "accounts/{accountId}/notification-email",
    }
    for name, (_, auth_level, methods) in routes_by_name.items():
        if name not in {"health", *support}:
            assert "FUNCTION" in auth_level
            assert [m.split(".")[-1] for m in methods] == ["POST"]
    for name, method in (("account_hold", "PUT"), ("account_release", "DELETE")):
        route, auth_level, methods = routes_by_name[name]
        assert (route, [m.split(".")[-1] for m in methods]) == ("accounts/{accountId}/hold", [method])
        assert "ADMIN" in auth_level


def test_the_overview_lists_subscriptions_with_the_fixed_fields(account: AccountData) -> None:
    response = call("overview", account.id, {"principalId": ADMIN})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    subscriptions = {s["id"]: s for s in body(response)["subscriptions"]}
    since = datetime.fromisoformat(subscriptions["sub-a"]["pastDueSince"])
    assert subscriptions["sub-a"] | {"pastDueSince": None, "dates": None} == {
        "id": "sub-a",
        "name": "Production",
        "service": "Azure",
        "state": "PastDue",
        "paymentMethodId": VISA,
        "outstanding": {"amount": "49.95", "currency": "EUR"},
        "canSettle": True,
        "pastDueSince": None,
        "dates": None,
    }
    # The default policy: the warning 5 days before the cancellation on day 30, the deletion 90 days after it; ISO
    # 8601 in UTC. No automatic retry: the failure that made it past due named no gateway token.
    assert subscriptions["sub-a"]["dates"] == {
        "nextRetry": None,
        "warning": (since + timedelta(days=25)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cancellation": (since + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deletion": (since + timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert subscriptions["sub-c"]["dates"] == {
        "nextRetry": None,
        "warning": None,
        "cancellation": None,
        "deletion": None,
    }
    assert [a["kind"] for a in body(response)["alerts"]] == ["payment_failed"]


def test_the_quote_carries_its_version_total_and_lines(account: AccountData) -> None:
    response = call("quote", account.id, {"principalId": ADMIN, "subscriptionId": "sub-b"})

    quote = body(response)
    assert response.status_code == 200
    assert quote["quoteVersion"].startswith("q1-")
    assert quote["failedPaymentMethodId"] == VISA
    assert quote["total"] == {"amount": "69.95", "currency": "EUR"}
    assert {k for line in quote["lines"] for k in line} >= {
        "subscriptionId",
        "service",
        "invoiceId",
        "amount",
        "paymentMethodId",
    }


def test_a_settlement_answers_with_what_changed(account: AccountData) -> None:
    response = settle(account.id, settle_body(payment_method={"id": MASTERCARD}))

    result = body(response)
    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response.headers
    assert result["status"] == "succeeded"
    assert result["reason"] is None
    assert result["charged"] == {"amount": "69.95", "currency": "EUR"}
    assert result["reenabledSubscriptions"] == ["sub-a", "sub-b"]
    assert result["activePaymentMethodId"] == MASTERCARD
    assert result["remittance"] is None


def test_the_same_idempotency_key_in_a_new_call_replays_the_answer(account: AccountData) -> None:
    first = settle(account.id, settle_body())
    again = settle(account.id, settle_body())

    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert body(again) == body(first)


def test_a_retried_webhook_with_the_same_id_and_body_gets_the_same_answer(account: AccountData) -> None:
    first = settle(account.id, settle_body(), webhook_id="msg_retry")
    again = settle(account.id, settle_body(), webhook_id="msg_retry")

    assert again.status_code == 200
    assert body(again) == body(first)


def test_paying_by_invoice_answers_202_with_remittance_details(account: AccountData) -> None:
    response = settle(account.id, settle_body(payment_method={"kind": "invoice"}))

    result = body(response)
    assert response.status_code == 202
    assert result["status"] == "pending"
    assert set(result["remittance"]) == {"beneficiary", "iban", "bic", "reference", "amount", "currency"}


def test_a_gateway_timeout_answers_202_pending(account: AccountData) -> None:
    response = settle(account.id, settle_body(payment_method={"token": "tok_timeout"}))

    assert response.status_code == 202
    assert (body(response)["status"], body(response)["reason"]) == ("pending", "gateway_timeout")


def test_a_declined_card_answers_200_with_the_reason(account: AccountData) -> None:
    response = settle(account.id, settle_body(payment_method={"token": "tok_expired_card"}))

    assert response.status_code == 200
    assert (body(response)["status"], body(response)["reason"]) == ("declined", "expired_card")


def test_the_notification_address_can_be_read_and_changed(account: AccountData) -> None:
    read = call("notification-email", account.id, {"principalId": ADMIN})
    changed = call("notification-email", account.id, {"principalId": ADMIN, "notificationEmail": "ap@contoso.example"})

    assert body(read)["notificationEmail"] == "billing@contoso.example"
    assert body(read)["lastNotifications"] == []
    assert (body(changed)["notificationEmail"], body(changed)["changed"]) == ("ap@contoso.example", True)


# --- signatures and replays -----------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_signature_header_is_401(account: AccountData, missing: str) -> None:
    req = request("overview", account.id, {"principalId": ADMIN})
    headers = {k: v for k, v in req.headers.items() if k != missing}
    unsigned = func.HttpRequest(
        method="POST", url=req.url, headers=headers, route_params=req.route_params, body=req.get_body()
    )

    assert_problem(routes.overview(unsigned), 401, "invalid-signature", header=missing)


def test_a_signature_with_another_secret_is_401(account: AccountData) -> None:
    other = PortalSigner(secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")

    assert_problem(call("overview", account.id, {"principalId": ADMIN}, signer=other), 401, "invalid-signature")


def test_a_timestamp_outside_the_tolerance_is_401(account: AccountData) -> None:
    stale = PortalSigner(at=NOW - timedelta(minutes=6))

    response = call("overview", account.id, {"principalId": ADMIN}, signer=stale)

    assert_problem(response, 401, "invalid-signature", header="webhook-timestamp")


def test_a_replayed_webhook_id_with_another_body_is_409(account: AccountData) -> None:
    call("overview", account.id, {"principalId": ADMIN}, webhook_id="msg_once")

    response = call("overview", account.id, {"principalId": "user-8"}, webhook_id="msg_once")

    assert_problem(response, 409, "webhook-replayed", header="webhook-id")


# --- who may act on what --------------------------------------------------------------------------------------


def test_another_principal_is_403_with_the_field_at_fault(account: AccountData) -> None:
    assert_problem(
        call("overview", account.id, {"principalId": "user-8"}), 403, "principal-not-allowed", pointer="#/principalId"
    )
    assert_problem(settle(account.id, settle_body(principal_id="user-8")), 403, "principal-not-allowed")


def test_an_unknown_account_is_404(deps: Dependencies) -> None:
    response = call("overview", "acc-nobody", {"principalId": ADMIN})

    assert_problem(response, 404, "account-not-found", parameter="accountId")


def test_an_account_id_that_cannot_exist_is_404(deps: Dependencies) -> None:
    assert_problem(call("overview", "bad id", {"principalId": ADMIN}), 404, "account-not-found")


def test_a_subscription_of_another_account_is_404(account: AccountData, deps: Dependencies) -> None:
    other = shared_card_account().write(deps.accounts)

    response = call("quote", other.id, {"principalId": ADMIN, "subscriptionId": "sub-x"})

    assert_problem(response, 404, "subscription-not-found", pointer="#/subscriptionId")


def test_an_unknown_payment_method_in_a_settlement_points_at_the_method(account: AccountData) -> None:
    response = settle(account.id, settle_body(payment_method={"id": "pm-nope"}))

    assert_problem(response, 404, "payment-method-not-found", pointer="#/paymentMethod/id")


# --- bad requests ---------------------------------------------------------------------------------------------


def test_an_unknown_field_is_422_with_its_pointer(account: AccountData) -> None:
    response = call("overview", account.id, {"principalId": ADMIN, "isAdmin": True})

    assert_problem(response, 422, "validation-failed", pointer="#/isAdmin")


def test_an_amount_sent_as_a_number_is_422(account: AccountData) -> None:
    payload = settle_body()
    payload["expectedTotal"]["amount"] = 69.95

    assert_problem(settle(account.id, payload), 422, "validation-failed", pointer="#/expectedTotal/amount")


def test_an_amount_with_too_many_decimals_for_its_currency_is_422(account: AccountData) -> None:
    assert_problem(
        settle(account.id, settle_body(amount="69.951")), 422, "validation-failed", pointer="#/expectedTotal"
    )


def test_two_payment_methods_at_once_are_422(account: AccountData) -> None:
    payload = settle_body(payment_method={"id": MASTERCARD, "token": "tok_visa"})

    assert_problem(settle(account.id, payload), 422, "validation-failed", pointer="#/paymentMethod")


def test_a_missing_field_is_422(account: AccountData) -> None:
    assert_problem(
        call("quote", account.id, {"principalId": ADMIN}), 422, "validation-failed", pointer="#/subscriptionId"
    )


def test_malformed_json_is_400(account: AccountData) -> None:
    assert_problem(call("overview", account.id, b'{"principalId": '), 400, "malformed-json", pointer="#")


def test_a_json_array_is_400(account: AccountData) -> None:
    assert_problem(call("overview", account.id, b"[]"), 400, "malformed-json")


def test_a_body_over_64_kib_is_413(account: AccountData) -> None:
    payload = {"principalId": ADMIN, "padding": "x" * (64 * 1024)}

    assert_problem(call("overview", account.id, payload), 413, "body-too-large")


def test_a_body_that_is_not_json_is_415(account: AccountData) -> None:
    response = call("overview", account.id, {"principalId": ADMIN}, headers={"content-type": "text/plain"})

    assert_problem(response, 415, "unsupported-media-type", header="Content-Type")


def test_a_settlement_without_an_idempotency_key_is_400(account: AccountData) -> None:
    response = call("settle", account.id, settle_body())

    assert_problem(response, 400, "idempotency-key-required", header="Idempotency-Key")


def test_the_same_idempotency_key_with_another_body_is_422(account: AccountData) -> None:
    settle(account.id, settle_body())

    response = settle(account.id, settle_body(payment_method={"token": "tok_mastercard"}))

    assert_problem(response, 422, "idempotency-key-reused", header="Idempotency-Key")


def test_a_partial_payment_is_409_with_the_full_quote(account: AccountData) -> None:
    response = settle(account.id, settle_body(amount="49.95"))

    problem = assert_problem(response, 409, "quote-changed", pointer="#/expectedTotal")
    assert problem["quote"]["total"] == {"amount": "69.95", "currency": "EUR"}


def test_a_stale_quote_version_is_409_with_the_new_quote(account: AccountData) -> None:
    response = settle(account.id, settle_body(quoteVersion="q1-stale"))

    problem = assert_problem(response, 409, "quote-changed")
    assert problem["quote"]["quoteVersion"].startswith("q1-")


def test_nothing_to_settle_is_409(account: AccountData) -> None:
    response = call("quote", account.id, {"principalId": ADMIN, "subscriptionId": "sub-c"})

    assert_problem(response, 409, "nothing-to-settle", pointer="#/subscriptionId")


def test_an_invalid_notification_address_is_422(account: AccountData) -> None:
    response = call("notification-email", account.id, {"principalId": ADMIN, "notificationEmail": "nope"})

    assert_problem(response, 422, "validation-failed", pointer="#/notificationEmail")


# --- the signature binds the account and the Idempotency-Key --------------------------------------------------

ROUTE_BODIES: dict[str, dict[str, Any]] = {
    "overview": {"principalId": ADMIN},
    "quote": {"principalId": ADMIN, "subscriptionId": "sub-a"},
    "settle": settle_body(payment_method={"kind": "invoice"}),
    "notification-email": {"principalId": ADMIN},
}


@pytest.mark.parametrize("route", list(ROUTE_BODIES))
def test_a_body_that_does_not_name_its_account_is_422(account: AccountData, route: str) -> None:
    response = call(route, account.id, body_of(ROUTE_BODIES[route]), headers={"Idempotency-Key": "key-1"})

    assert_problem(response, 422, "validation-failed", pointer="#/accountId")


@pytest.mark.parametrize("route", list(ROUTE_BODIES))
def test_a_body_signed_for_one_account_is_refused_on_the_route_of_another_account_of_the_same_admin(
    account: AccountData, deps: Dependencies, route: str
) -> None:
    other = shared_card_account().write(deps.accounts)
    signed_for_account = body_of(bound(ROUTE_BODIES[route], account.id, "key-1" if route == "settle" else None))

    response = call(route, other.id, signed_for_account, headers={"Idempotency-Key": "key-1"})

    problem = assert_problem(response, 422, "account-mismatch", pointer="#/accountId")
    assert any(error.get("parameter") == "accountId" for error in problem["errors"])
    assert deps.accounts.load(other.id).all(Settlement) == []


def test_a_settlement_body_that_does_not_name_its_idempotency_key_is_422(account: AccountData) -> None:
    response = call("settle", account.id, body_of(bound(settle_body(), account.id)), headers={"Idempotency-Key": "k"})

    assert_problem(response, 422, "validation-failed", pointer="#/idempotencyKey")


def test_a_captured_settlement_replayed_with_a_new_idempotency_key_starts_no_new_settlement(
    account: AccountData, deps: Dependencies
) -> None:
    captured = request(
        "settle", account.id, settle_body(payment_method={"kind": "invoice"}), headers={"Idempotency-Key": "key-1"}
    )
    first = routes.settle(captured)
    assert first.status_code == 202, first.get_body()
    headers = {name: value for name, value in captured.headers.items() if name.lower() != "idempotency-key"}
    replayed = func.HttpRequest(
        method="POST",
        url=captured.url,
        headers={**headers, "Idempotency-Key": "key-2"},
        route_params=captured.route_params,
        body=captured.get_body(),
    )

    response = routes.settle(replayed)

    problem = assert_problem(response, 422, "idempotency-key-mismatch", pointer="#/idempotencyKey")
    assert any(error.get("header") == "Idempotency-Key" for error in problem["errors"])
    settlements = deps.accounts.load(account.id).all(Settlement)
    assert [(s.id, s.status) for s in settlements] == [(body(first)["settlementId"], SettlementStatus.PENDING)]


def test_a_second_invoice_request_for_the_same_balance_answers_the_pending_reference(account: AccountData) -> None:
    first = settle(account.id, settle_body(payment_method={"kind": "invoice"}), key="key-1")
    second = settle(account.id, settle_body(payment_method={"kind": "invoice"}), key="key-2")
    again = settle(account.id, settle_body(payment_method={"kind": "invoice"}), key="key-2")

    assert (first.status_code, second.status_code) == (202, 202)
    assert body(second)["settlementId"] == body(first)["settlementId"]
    assert body(second)["remittance"] == body(first)["remittance"]
    assert body(again) == body(second)
    assert again.headers["Idempotent-Replayed"] == "true"

"""Fuzzing the HTTP API from its OpenAPI document: signed calls with generated bodies never get a 5xx.

Schemathesis is not installed, so this derives Hypothesis strategies from the committed document's request
schemas (the subset of JSON Schema it uses), mixes in mutations and junk, signs every call validly (or not)
and checks each answer against the document: a documented status, problem+json for every 4xx, and a 2xx body
that matches its response schema.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from functions.settle_http import routes
from functions.settle_http.openapi import render
from shared.bootstrap import Dependencies
from shared.services.views import NotificationEmailView, Overview, Quote, SettlementOutcome
from tests.support.settlement_data import (
    ADMIN,
    MASTERCARD,
    VISA,
    AccountData,
    PortalSigner,
)

pytestmark = pytest.mark.azurite

DOCUMENT_PATH = Path(__file__).resolve().parents[2] / "openapi" / "settle-api.json"
DOCUMENT: dict[str, Any] = json.loads(DOCUMENT_PATH.read_text(encoding="utf-8"))
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
FUNCTIONS: dict[str, Callable[[func.HttpRequest], func.HttpResponse]] = {
    "/accounts/{accountId}/overview": routes.overview,
    "/accounts/{accountId}/settlement/quote": routes.quote,
    "/accounts/{accountId}/settlement": routes.settle,
    "/accounts/{accountId}/notification-email": routes.notification_email_route,
}
VIEWS: dict[str, type[BaseModel]] = {
    "Overview": Overview,
    "Quote": Quote,
    "SettlementOutcome": SettlementOutcome,
    "NotificationEmailView": NotificationEmailView,
}
# Values that reach deep into the services, offered beside whatever the schema allows.
LIKELY: dict[str, list[Any]] = {
    "principalId": [ADMIN, "user-8"],
    "subscriptionId": ["sub-a", "sub-b", "sub-c", "sub-d", "sub-x"],
    "paymentMethodId": [VISA, MASTERCARD, "pm-x"],
    "id": [VISA, MASTERCARD, "pm-x"],
    "token": ["tok_visa", "tok_decline", "tok_timeout", "tok_expired_card", "tok_x"],
    "amount": ["69.95", "49.95", "0", "69.950"],
    "currency": ["EUR", "USD", "JPY"],
    "notificationEmail": ["ap@contoso.example", "billing@contoso.example"],
    "paymentMethod": [{"token": "tok_visa"}, {"token": "tok_timeout"}, {"id": MASTERCARD}, {"kind": "invoice"}],
    "expectedTotal": [{"amount": "69.95", "currency": "EUR"}],
}
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def test_the_committed_openapi_document_is_the_one_the_models_describe() -> None:
    assert DOCUMENT_PATH.read_text(encoding="utf-8") == render(), (
        "regenerate with: python -m functions.settle_http.openapi > openapi/settle-api.json"
    )


def test_the_document_covers_every_route_and_documents_the_webhook_headers_and_problems() -> None:
    assert DOCUMENT["openapi"] == "3.1.0"
    # The support tools' hold route (admin key, unsigned) has its own tests: tests/functions/test_hold_http.py.
    assert set(DOCUMENT["paths"]) == {"/health", "/accounts/{accountId}/hold", *FUNCTIONS}
    hold = DOCUMENT["paths"]["/accounts/{accountId}/hold"]
    assert {method: operation["security"] for method, operation in hold.items()} == {
        "put": [{"adminKey": []}],
        "delete": [{"adminKey": []}],
    }
    for path in FUNCTIONS:
        operation = DOCUMENT["paths"][path]["post"]
        refs = {p["$ref"].rsplit("/", 1)[-1] for p in operation["parameters"]}
        assert {"WebhookId", "WebhookTimestamp", "WebhookSignature", "accountId"} <= refs
        assert {"400", "401", "403", "404", "409", "413", "422"} <= set(operation["responses"])


def strategy_for(schema: dict[str, Any], name: str = "") -> st.SearchStrategy[Any]:
    """A strategy for the JSON Schema subset pydantic writes, biased towards values the services know."""
    if "$ref" in schema:
        return strategy_for(SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]], name)
    if "anyOf" in schema:
        options = [strategy_for(option, name) for option in schema["anyOf"] if option.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        return st.one_of(*options, *options, *options, *([st.none()] if nullable else []))
    base = _base_strategy(schema)
    if name in LIKELY:
        likely = st.sampled_from(LIKELY[name])
        return st.one_of(likely, likely, likely, base)
    return base


def _base_strategy(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if "const" in schema or "enum" in schema:
        return st.sampled_from(schema.get("enum", [schema.get("const")]))
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {key: strategy_for(value, key) for key, value in properties.items() if key in required},
            optional={key: strategy_for(value, key) for key, value in properties.items() if key not in required},
        )
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(re.compile(schema["pattern"]), fullmatch=True).filter(
                lambda text: len(text) <= schema.get("maxLength", 10_000)
            )
        return st.text(min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 40), 40))
    if kind == "null":
        return st.none()
    return JSON_VALUES


@st.composite
def mutated(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    body = draw(strategy_for(schema))
    if not isinstance(body, dict) or not body:
        return body
    choice = draw(st.sampled_from(["drop", "extra", "retype", "keep"]))
    key = draw(st.sampled_from(sorted(body)))
    if choice == "drop":
        body.pop(key)
    elif choice == "extra":
        body[draw(st.text(string.ascii_letters, min_size=1, max_size=12))] = draw(JSON_VALUES)
    elif choice == "retype":
        body[key] = draw(JSON_VALUES)
    return body


def bodies(schema: dict[str, Any]) -> st.SearchStrategy[bytes]:
    as_json = st.one_of(strategy_for(schema), mutated(schema), JSON_VALUES).map(
        lambda value: json.dumps(value).encode()
    )
    valid = strategy_for(schema).map(lambda value: json.dumps(value).encode())
    return st.one_of(valid, valid, as_json, as_json, st.binary(max_size=64))


def check_answer(path: str, response: func.HttpResponse) -> None:
    documented = DOCUMENT["paths"][path]["post"]["responses"]
    status = response.status_code
    assert status < 500, response.get_body()
    assert str(status) in documented, (status, response.get_body())
    document = json.loads(response.get_body())
    if status >= 400:
        assert response.mimetype == "application/problem+json"
        assert {"type", "title", "status", "detail", "errors"} <= set(document)
        assert document["status"] == status
        assert all("detail" in error for error in document["errors"])
        return
    schema_name = documented[str(status)]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert set(SCHEMAS[schema_name]["required"]) <= set(document)
    VIEWS[schema_name].model_validate(document)


def call(path: str, raw: bytes, account_id: str, headers: dict[str, str]) -> func.HttpResponse:
    request = func.HttpRequest(
        method="POST",
        url=f"http://localhost/api{path.replace('{accountId}', account_id)}",
        headers=headers,
        route_params={"accountId": account_id},
        body=raw,
    )
    return FUNCTIONS[path](request)


def request_schema(path: str) -> dict[str, Any]:
    schema: dict[str, Any] = DOCUMENT["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return schema


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("path", sorted(FUNCTIONS))
def test_junk_and_mutated_calls_never_get_a_server_error_and_always_a_documented_answer(
    deps: Dependencies, account: AccountData, path: str
) -> None:
    signer = PortalSigner()

    @FUZZ
    @given(
        raw=bodies(request_schema(path)),
        account_id=st.one_of(st.just(account.id), st.just("acc-nobody"), st.text(max_size=10)),
        idempotency_key=st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"]), st.text(max_size=8)),
        signed=st.sampled_from(["valid", "valid", "valid", "unsigned", "wrong-body"]),
    )
    def run(raw: bytes, account_id: str, idempotency_key: str | None, signed: str) -> None:
        headers = signer.headers(raw if signed != "wrong-body" else raw + b" ")
        if signed == "unsigned":
            headers.pop("webhook-signature")
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        check_answer(path, call(path, raw, account_id, headers))

    run()


@pytest.mark.parametrize("path", sorted(FUNCTIONS))
def test_schema_valid_signed_calls_reach_the_services_and_never_get_a_server_error(
    deps: Dependencies, account: AccountData, path: str
) -> None:
    signer = PortalSigner()

    @FUZZ
    @given(
        payload=strategy_for(request_schema(path)),
        idempotency_key=st.sampled_from(["k1", "k2", "k3", "k4"]),
        bind=st.sampled_from([True, True, True, False]),
    )
    def run(payload: dict[str, Any], idempotency_key: str, bind: bool) -> None:
        if bind:  # mostly bound to the route and the header, as a portal binds them, so that calls reach the services
            payload = {**payload, "accountId": account.id}
            if "idempotencyKey" in payload:
                payload["idempotencyKey"] = idempotency_key
        raw = json.dumps(payload).encode()
        headers = {**signer.headers(raw), "Idempotency-Key": idempotency_key}
        check_answer(path, call(path, raw, account.id, headers))

    run()

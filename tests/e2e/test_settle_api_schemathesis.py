"""Schemathesis fuzzes the settle-balance API from its committed OpenAPI document, over HTTP, against the local host.

Every generated call is signed over the exact bytes sent and carries the function key, so that it gets past the
host and the signature check; hooks steer a share of the cases to a seeded account, its admin and its
subscriptions, methods and sandbox tokens, so that calls reach the services and not only the 404 and 403 answers.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis import Case, CheckContext, GenerationMode, HookContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from devhost.azurite import AzuriteProcess
from devhost.process import LocalHostProcess
from portal.signing import new_webhook_id, webhook_headers
from shared.storage.account_store import AccountStore
from shared.storage.tables import TableStorage
from shared.webhooks import decode_secret
from tests.support.local_host import start_app
from tests.support.settlement_data import ADMIN, MASTERCARD, VISA, shared_card_account

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "settle-api.json"
FUNCTION_KEY = "schemathesis-key"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"schemathesis-fuzz-webhook-key-01").decode()
PROBLEM_MEDIA_TYPE = "application/problem+json"
# Each operation fuzzes its own account, so that settling one does not empty the others' balances.
ACCOUNTS = {
    "/accounts/{accountId}/overview": "acc-fuzz-overview",
    "/accounts/{accountId}/settlement/quote": "acc-fuzz-quote",
    "/accounts/{accountId}/settlement": "acc-fuzz-settle",
    "/accounts/{accountId}/notification-email": "acc-fuzz-email",
}
# Values the services know, offered beside the generated ones in schema-valid bodies.
LIKELY: dict[str, list[Any]] = {
    "principalId": [ADMIN, ADMIN, ADMIN, "user-8"],
    "subscriptionId": ["sub-a", "sub-b", "sub-c", "sub-d", "sub-x"],
    "paymentMethodId": [VISA, MASTERCARD, "pm-x"],
    # Declines first: they change nothing, so later cases still find a balance to pay.
    "paymentMethod": [
        {"token": "tok_decline"},
        {"token": "tok_insufficient_funds"},
        {"token": "tok_expired_card"},
        {"id": VISA},
        {"token": "tok_timeout"},
        {"kind": "invoice"},
        {"id": MASTERCARD},
        {"token": "tok_visa"},
    ],
    "expectedTotal": [{"amount": "69.95", "currency": "EUR"}, {"amount": "49.95", "currency": "EUR"}],
    "quoteVersion": [None],  # a generated version is stale, and is answered by a fresh quote (409)
    "notificationEmail": ["ap@contoso.example", None],
}

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": 40,
            "deterministic": True,
            "database": "none",
            # The key is sent on every call: without it the host itself answers a plain-text 401 before any
            # function runs (test_settlement_e2e covers that), which the document lists as problem+json.
            "with-security-parameters": False,
        },
        # devhost's http.server has no TRACE handler and answers it 501 itself; the other verbs get its 405.
        "phases": {"stateful": {"enabled": False}, "coverage": {"unexpected-methods": ["PUT", "PATCH", "DELETE"]}},
    }
)
# The portal's signed calls only: the support tools' hold route takes the admin key, not the function key sent here
# (tests/functions/test_hold_http.py calls it through the local host's key check).
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG).exclude(path="/accounts/{accountId}/hold")


@schema.hook
def flatmap_case(context: HookContext, case: Case[Any]) -> st.SearchStrategy[Case[Any]]:
    """Point three cases in four at the seeded account; fill schema-valid bodies with values it knows, bound to the
    route's account and the Idempotency-Key header as the signature must bind them."""
    account_id = ACCOUNTS.get(case.path)
    if account_id is None:
        return st.just(case)
    generated_parameters, generated_body = dict(case.path_parameters), case.body

    def steered(drawn: tuple[str | None, dict[str, Any]]) -> Case[Any]:
        chosen_account, known = drawn
        case.path_parameters = {**generated_parameters, **({"accountId": chosen_account} if chosen_account else {})}
        if known and isinstance(generated_body, dict):
            case.body = {**generated_body, **known}
        if _is_positive(case) and isinstance(case.body, dict):
            case.body = {**case.body, **_bindings(case)}
        return case

    return st.tuples(st.sampled_from([account_id, account_id, account_id, None]), _known_values(case)).map(steered)


def _is_positive(case: Case[Any]) -> bool:
    return case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE


def _bindings(case: Case[Any]) -> dict[str, Any]:
    """A valid body names the account of its route and a settlement's Idempotency-Key, as a portal signs them."""
    bindings = {"accountId": case.path_parameters.get("accountId")}
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(case.body, dict) and "idempotencyKey" in case.body and isinstance(key, str):
        bindings["idempotencyKey"] = key
    return bindings


def _known_values(case: Case[Any]) -> st.SearchStrategy[dict[str, Any]]:
    if not _is_positive(case) or not isinstance(case.body, dict):
        return st.just({})
    body = case.body
    return st.fixed_dictionaries(
        # The generated value last: Hypothesis starts from the first choices, so those should be the known ones.
        {name: st.sampled_from([*LIKELY[name] * 3, body[name]]) for name in LIKELY if name in body}
    )


def problem_details_for_client_errors(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Every 4xx of the functions is RFC 9457 problem+json whose `status` is the HTTP status."""
    if not 400 <= response.status_code < 500 or _probes_the_host_router(response, case):
        return None
    media_type = response.headers.get("content-type", [""])[0]
    assert media_type.startswith(PROBLEM_MEDIA_TYPE), f"{response.status_code} answered as {media_type!r}"
    document = response.json()
    assert document["status"] == response.status_code, document
    assert all("detail" in error for error in document["errors"]), document
    return None


def _probes_the_host_router(response: Response, case: Case[Any]) -> bool:
    """An undocumented method is refused by the host's router, before any function runs."""
    return str(response.request.method).lower() != str(case.operation.method).lower()


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
    problem_details_for_client_errors,
]


@pytest.fixture(scope="module")
def local_host(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    storage = TableStorage(azurite.connection_string)
    storage.ensure_tables()
    for account_id in ACCOUNTS.values():
        shared_card_account(account_id).write(AccountStore(storage))
    host = start_app(
        tmp_path_factory.mktemp("settle-schemathesis"),
        azurite.connection_string,
        LOCAL_FUNCTION_KEY=FUNCTION_KEY,
        PORTAL_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    yield host
    host.stop()


def signed_call(case: Case[Any], host: LocalHostProcess) -> Response:
    """Send the case with its body serialised here and signed over exactly those bytes, then run the checks."""
    headers = {"x-functions-key": FUNCTION_KEY}
    extra: dict[str, Any] = {}
    if not isinstance(case.body, NotSet):
        raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body, ensure_ascii=False).encode()
        headers |= webhook_headers(decode_secret(WEBHOOK_SECRET), new_webhook_id(), int(time.time()), raw)
        extra["data"] = raw
    return case.call_and_validate(base_url=f"{host.base_url}/api", headers=headers, checks=CHECKS, **extra)


@schema.parametrize()
def test_generated_calls_get_documented_answers_and_never_a_server_error(
    case: Case[Any], local_host: LocalHostProcess
) -> None:
    signed_call(case, local_host)

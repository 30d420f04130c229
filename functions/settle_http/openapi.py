"""The OpenAPI 3.1 document of the settle-balance API, built from the request and response models.

`python -m functions.settle_http.openapi > openapi/settle-api.json` regenerates the committed document; a test
fails when the two drift apart.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from functions.settle_http.models import (
    IDEMPOTENCY_KEY_PATTERN,
    MAX_BODY_BYTES,
    HoldRequest,
    NotificationEmailRequest,
    OverviewRequest,
    QuoteRequest,
    ReleaseRequest,
    SettleRequest,
)
from functions.settle_http.problems import DOMAIN_PROBLEMS, PROBLEM_MEDIA_TYPE, PROBLEM_TYPE_BASE
from shared.domain.model import IDENTIFIER_PATTERN
from shared.services.views import HoldAnswer, NotificationEmailView, Overview, Quote, SettlementOutcome

API_VERSION = "1.0.0"
_SCHEMAS = "#/components/schemas/"
_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (OverviewRequest, "validation"),
    (QuoteRequest, "validation"),
    (SettleRequest, "validation"),
    (NotificationEmailRequest, "validation"),
    (HoldRequest, "validation"),
    (ReleaseRequest, "validation"),
    (Overview, "serialization"),
    (Quote, "serialization"),
    (SettlementOutcome, "serialization"),
    (NotificationEmailView, "serialization"),
    (HoldAnswer, "serialization"),
]
_DESCRIPTION = f"""\
The settle-balance flow of the billing portal (see docs/settlement-api.md).

Every POST is a Standard Webhooks call: `webhook-id`, `webhook-timestamp` (Unix seconds, within the tolerance,
300 s by default) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` of `{{id}}.{{timestamp}}.{{raw body}}` with
the `whsec_` secret). A webhook id used again with another request is refused (409). The signature covers the
body only, so every body names the route's account in `accountId`, and a settlement's body names its
`Idempotency-Key` in `idempotencyKey`: a body signed for one account or one key is refused on any other (422).
Bodies hold at most {MAX_BODY_BYTES} bytes. Amounts are decimal strings. Every 4xx answer is RFC 9457
`application/problem+json` whose `errors` list names the member (`pointer`), header (`header`) or route parameter
(`parameter`) at fault.

`/accounts/{{accountId}}/hold` is for support tools, not the portal: it takes the host's admin (master) key, a
function key gets 401, and it is not signed (see docs/support-holds.md)."""

_ERRORS = {
    "400": "Malformed JSON, or no Idempotency-Key on a settlement",
    "401": "Missing or invalid signature, or a timestamp outside the tolerance",
    "403": "The principal is not the account's admin",
    "404": "No such account, or a subscription or payment method not on this account",
    "409": "Webhook id replayed with another request; stale quote (carries `quote`); nothing to settle; a payment "
    "in progress; a notification address changed later than this change; or a concurrent update (retry)",
    "413": f"The body exceeds {MAX_BODY_BYTES} bytes",
    "415": "The body is not application/json",
    "422": "A member is missing or invalid; `accountId` is not the route's account (account-mismatch) or "
    "`idempotencyKey` not the header's (idempotency-key-mismatch); or an Idempotency-Key reused with another body",
    "503": "Storage unavailable; retry after the Retry-After delay",
}


def build_openapi() -> dict[str, Any]:
    """The whole document, deterministic, so that the committed copy can be compared with it."""
    _, generated = models_json_schema(_MODELS, ref_template=_SCHEMAS + "{model}", by_alias=True)
    schemas = {name: _without_titles(schema) for name, schema in sorted(generated["$defs"].items())}
    schemas["Problem"] = _problem_schema()
    schemas["QuoteChangedProblem"] = {
        "allOf": [{"$ref": _SCHEMAS + "Problem"}],
        "type": "object",
        "properties": {"quote": {"$ref": _SCHEMAS + "Quote"}},
        "description": "409 quote-changed: nothing was charged; `quote` is the current quote to show and pay.",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "pastdue settle-balance API", "version": API_VERSION, "description": _DESCRIPTION},
        "servers": [{"url": "/api"}],
        "security": [{"functionKey": []}],
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "adminKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-functions-key",
                    "description": "The function app's admin (master) key; a function key is refused (401)",
                },
            },
            "parameters": _parameters(),
            "responses": {
                code: {"description": text, "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _SCHEMAS + "Problem"}}}}
                for code, text in _ERRORS.items()
            },
        },
    }


def _paths() -> dict[str, Any]:
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Liveness (anonymous, touches no storage)",
                "security": [],
                "responses": {
                    "200": {
                        "description": "Alive",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"status": {"const": "ok"}},
                                    "required": ["status"],
                                }
                            }
                        },
                    }
                },
            }
        },
        "/accounts/{accountId}/overview": {
            "post": _operation(
                "overview", "Subscriptions, outstanding amounts, open alerts", "OverviewRequest", {"200": "Overview"}
            )
        },
        "/accounts/{accountId}/settlement/quote": {
            "post": _operation("quote", "The total to pay at once, line by line", "QuoteRequest", {"200": "Quote"})
        },
        "/accounts/{accountId}/settlement": {
            "post": _operation(
                "settle",
                "Pay the whole balance (card on file, new card token, or invoice)",
                "SettleRequest",
                {"200": "SettlementOutcome", "202": "SettlementOutcome"},
                idempotent=True,
            )
        },
        "/accounts/{accountId}/notification-email": {
            "post": _operation(
                "notificationEmail",
                "Read or change the billing notification address; the last notifications' status",
                "NotificationEmailRequest",
                {"200": "NotificationEmailView"},
            )
        },
        "/accounts/{accountId}/hold": {
            "put": _support_operation(
                "placeHold",
                "Hold the account's collection (no reminder, warning, cancellation or deletion), or change the "
                "hold's reason and end",
                "HoldRequest",
            ),
            "delete": _support_operation(
                "releaseHold",
                "End the hold: pending deadlines move later by the time held (`not_held`: nothing to release)",
                "ReleaseRequest",
            ),
        },
    }


_SUPPORT_ERRORS = {
    "400": "Malformed JSON",
    "401": "No admin key (a function key is not enough); answered by the host, as plain text",
    "404": "No such account",
    "409": "A concurrent update (retry)",
    "413": f"The body exceeds {MAX_BODY_BYTES} bytes",
    "415": "The body is not application/json",
    "422": "A member is missing or invalid (`until` not an ISO 8601 date-time with offset, or not in the future); "
    "`accountId` is not the route's account (account-mismatch)",
    "503": "Storage unavailable; retry after the Retry-After delay",
}


def _support_operation(operation_id: str, summary: str, request: str) -> dict[str, Any]:
    problem_schema = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _SCHEMAS + "Problem"}}}
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": _SCHEMAS + "HoldAnswer"}}}}
    }
    for code, text in _SUPPORT_ERRORS.items():
        responses[code] = {"description": text} if code == "401" else {"description": text, "content": problem_schema}
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["support"],
        "security": [{"adminKey": []}],
        "parameters": [{"$ref": "#/components/parameters/accountId"}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _SCHEMAS + request}}},
        },
        "responses": responses,
    }


def _operation(
    operation_id: str, summary: str, request: str, answers: dict[str, str], *, idempotent: bool = False
) -> dict[str, Any]:
    parameters = [{"$ref": f"#/components/parameters/{name}"} for name in _PARAMETER_NAMES]
    if idempotent:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    descriptions = {
        "200": "Succeeded or declined (see `status`)" if idempotent else "OK",
        "202": "Pending: paying by invoice, or the gateway did not answer in time",
    }
    responses: dict[str, Any] = {
        code: {
            "description": descriptions[code],
            "content": {"application/json": {"schema": {"$ref": _SCHEMAS + schema}}},
        }
        for code, schema in answers.items()
    }
    for code in _ERRORS:
        responses[code] = {"$ref": f"#/components/responses/{code}"}
    if operation_id in {"quote", "settle"}:
        responses["409"] = {
            "description": _ERRORS["409"],
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": _SCHEMAS + "QuoteChangedProblem"}}},
        }
    return {
        "operationId": operation_id,
        "summary": summary,
        "parameters": parameters,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": _SCHEMAS + request}}},
        },
        "responses": responses,
    }


_PARAMETER_NAMES = ("accountId", "WebhookId", "WebhookTimestamp", "WebhookSignature")


def _parameters() -> dict[str, Any]:
    def header(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "header", "required": True, "description": description, "schema": schema}

    return {
        "accountId": {
            "name": "accountId",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": IDENTIFIER_PATTERN},
        },
        "WebhookId": header(
            "webhook-id", "Unique per call, stable across retries", {"type": "string", "maxLength": 256}
        ),
        "WebhookTimestamp": header(
            "webhook-timestamp", "Unix time in seconds", {"type": "string", "pattern": "^[0-9]{1,12}$"}
        ),
        "WebhookSignature": header(
            "webhook-signature",
            "Space-separated `v1,<base64>` signatures (several during key rotation)",
            {"type": "string"},
        ),
        "IdempotencyKey": header(
            "Idempotency-Key",
            "One per payment attempt: the same key replays the first answer and never charges twice; the body names "
            "it again in `idempotencyKey`",
            {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
        ),
    }


def _problem_schema() -> dict[str, Any]:
    slugs = sorted({kind.slug for kind, _ in DOMAIN_PROBLEMS.values()})
    return {
        "type": "object",
        "description": f"RFC 9457 problem details; `type` is {PROBLEM_TYPE_BASE}<slug>, e.g. " + ", ".join(slugs),
        "required": ["type", "title", "status", "detail", "errors"],
        "properties": {
            "type": {"type": "string", "format": "uri"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["detail"],
                    "properties": {
                        "detail": {"type": "string"},
                        "pointer": {"type": "string", "description": "JSON pointer into the body, such as #/a/b"},
                        "header": {"type": "string"},
                        "parameter": {"type": "string"},
                    },
                },
            },
            "settlementId": {"type": "string", "description": "409 settlement-in-progress: the blocking one"},
        },
    }


def _without_titles(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            key: _without_titles(value)
            for key, value in schema.items()
            if not (key == "title" and isinstance(value, str) and "properties" not in schema)
        }
    if isinstance(schema, list):
        return [_without_titles(item) for item in schema]
    return schema


def render() -> str:
    return json.dumps(build_openapi(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())

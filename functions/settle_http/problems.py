"""RFC 9457 problem details: every refusal names its type, a title, the status, a detail and the field at fault."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from pydantic import ValidationError

from shared.domain.errors import ConcurrencyError, DomainError, TransientStorageError
from shared.domain.holds import InvalidHoldError
from shared.domain.settle_balance import (
    AccountNotFoundError,
    IdempotencyKeyReusedError,
    PaymentMethodNotChargeableError,
    PaymentMethodNotFoundError,
    PrincipalNotAllowedError,
    SettlementInProgressError,
    SubscriptionDeletedError,
    SubscriptionNotFoundError,
)
from shared.domain.settlement import NothingToSettleError
from shared.services.account_views import InvalidNotificationEmailError, NewerNotificationEmailError
from shared.services.settle_balance import QuoteChangedError
from shared.webhooks import WebhookError, WebhookReplayError

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
PROBLEM_TYPE_BASE = "https://pastdue.example/problems/"
NO_STORE = {"Cache-Control": "no-store"}


@dataclass(frozen=True)
class FieldError:
    """One thing at fault: a body member (JSON pointer), a header or a route parameter."""

    detail: str
    pointer: str | None = None
    header: str | None = None
    parameter: str | None = None

    def to_json(self) -> dict[str, str]:
        where = {"pointer": self.pointer, "header": self.header, "parameter": self.parameter}
        return {"detail": self.detail, **{key: value for key, value in where.items() if value is not None}}


@dataclass(frozen=True)
class ProblemKind:
    status: int
    slug: str
    title: str


BAD_JSON = ProblemKind(400, "malformed-json", "The body is not a JSON object")
MISSING_IDEMPOTENCY_KEY = ProblemKind(400, "idempotency-key-required", "An Idempotency-Key header is required")
UNAUTHENTIC = ProblemKind(401, "invalid-signature", "The request is not signed correctly")
FORBIDDEN = ProblemKind(403, "principal-not-allowed", "This principal may not act on the account")
NOT_FOUND = ProblemKind(404, "not-found", "No such resource on this account")
ACCOUNT_NOT_FOUND = ProblemKind(404, "account-not-found", "The account does not exist")
REPLAYED = ProblemKind(409, "webhook-replayed", "This webhook-id was already used for another request")
CONFLICT = ProblemKind(409, "concurrent-update", "The account changed meanwhile; retry the request")
TOO_LARGE = ProblemKind(413, "body-too-large", "The request body is too large")
UNSUPPORTED_MEDIA = ProblemKind(415, "unsupported-media-type", "The body must be application/json")
INVALID = ProblemKind(422, "validation-failed", "The request body is not valid")
ACCOUNT_MISMATCH = ProblemKind(422, "account-mismatch", "The body names another account than the route")
IDEMPOTENCY_KEY_MISMATCH = ProblemKind(
    422, "idempotency-key-mismatch", "The body names another Idempotency-Key than the header"
)
UNAVAILABLE = ProblemKind(503, "storage-unavailable", "Storage is unavailable; retry later")
INTERNAL = ProblemKind(500, "internal-error", "Something went wrong on our side")

# Domain error -> (kind, where the fault lies). Pointers name request members; "accountId" is the route parameter.
DOMAIN_PROBLEMS: dict[type[DomainError], tuple[ProblemKind, FieldError]] = {
    AccountNotFoundError: (ACCOUNT_NOT_FOUND, FieldError("no such account", parameter="accountId")),
    PrincipalNotAllowedError: (FORBIDDEN, FieldError("not the account's admin", pointer="#/principalId")),
    SubscriptionNotFoundError: (
        ProblemKind(404, "subscription-not-found", "The subscription does not exist on this account"),
        FieldError("no such subscription on this account", pointer="#/subscriptionId"),
    ),
    PaymentMethodNotFoundError: (
        ProblemKind(404, "payment-method-not-found", "The payment method does not exist on this account"),
        FieldError("no such payment method on this account", pointer="#/paymentMethodId"),
    ),
    PaymentMethodNotChargeableError: (
        ProblemKind(422, "payment-method-not-chargeable", "The payment method cannot be charged"),
        FieldError("no card on file for this method; pay with a new card token", pointer="#/paymentMethod/id"),
    ),
    SubscriptionDeletedError: (
        ProblemKind(409, "subscription-deleted", "A deleted subscription cannot be settled"),
        FieldError("the subscription is deleted", pointer="#/subscriptionId"),
    ),
    NothingToSettleError: (
        ProblemKind(409, "nothing-to-settle", "The subscription has no outstanding balance"),
        FieldError("nothing is outstanding for this subscription", pointer="#/subscriptionId"),
    ),
    QuoteChangedError: (
        ProblemKind(409, "quote-changed", "The balance changed since the quote; nothing was charged"),
        FieldError("does not match the current quote (see `quote`)", pointer="#/expectedTotal"),
    ),
    SettlementInProgressError: (
        ProblemKind(409, "settlement-in-progress", "A payment for this balance is being processed"),
        FieldError("another settlement covers these charges", pointer="#/subscriptionId"),
    ),
    IdempotencyKeyReusedError: (
        ProblemKind(422, "idempotency-key-reused", "The Idempotency-Key was used with another request"),
        FieldError("already used with a different body", header="Idempotency-Key"),
    ),
    InvalidNotificationEmailError: (
        INVALID,
        FieldError("not a valid email address", pointer="#/notificationEmail"),
    ),
    InvalidHoldError: (INVALID, FieldError("must be in the future", pointer="#/until")),
    NewerNotificationEmailError: (
        ProblemKind(409, "notification-email-changed-later", "The address was changed later; read it again"),
        FieldError("a newer change to the address stands", pointer="#/notificationEmail"),
    ),
}


def problem(
    kind: ProblemKind,
    detail: str,
    errors: list[FieldError] | tuple[FieldError, ...] = (),
    *,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> func.HttpResponse:
    body = {
        "type": PROBLEM_TYPE_BASE + kind.slug,
        "title": kind.title,
        "status": kind.status,
        "detail": detail,
        "errors": [error.to_json() for error in errors],
        **extensions,
    }
    return func.HttpResponse(
        json.dumps(body),
        status_code=kind.status,
        mimetype=PROBLEM_MEDIA_TYPE,
        headers={**NO_STORE, **(headers or {})},
    )


def domain_problem(error: DomainError, pointers: dict[type[DomainError], str] | None = None) -> func.HttpResponse:
    """The problem for a service's domain error; `pointers` moves the fault to another member for one route."""
    for error_type in type(error).__mro__:
        if error_type in DOMAIN_PROBLEMS:
            kind, field = DOMAIN_PROBLEMS[error_type]
            pointer = (pointers or {}).get(error_type)
            if pointer is not None:
                field = FieldError(field.detail, pointer=pointer)
            return problem(kind, str(error), [field], **_extensions(error))
    return problem(INVALID, str(error))


def _extensions(error: DomainError) -> dict[str, Any]:
    if isinstance(error, QuoteChangedError):
        return {"quote": error.quote.to_wire()}
    if isinstance(error, SettlementInProgressError):
        return {"settlementId": error.settlement_id}
    return {}


def validation_problem(error: ValidationError) -> func.HttpResponse:
    errors = [FieldError(issue["msg"], pointer=_pointer(issue["loc"])) for issue in error.errors()]
    return problem(INVALID, f"{len(errors)} field(s) are not valid", errors)


def webhook_problem(error: WebhookError) -> func.HttpResponse:
    kind = REPLAYED if isinstance(error, WebhookReplayError) else UNAUTHENTIC
    return problem(kind, str(error), [FieldError(str(error), header=error.header)])


def concurrency_problem(error: ConcurrencyError) -> func.HttpResponse:
    return problem(CONFLICT, str(error), headers={"Retry-After": "1"})


def unavailable_problem(error: TransientStorageError) -> func.HttpResponse:
    return problem(UNAVAILABLE, "storage did not answer; retry later", headers={"Retry-After": "5"})


def _pointer(location: tuple[int | str, ...]) -> str:
    escaped = (str(part).replace("~", "~0").replace("/", "~1") for part in location)
    return "#/" + "/".join(escaped) if location else "#"


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body), status_code=status, mimetype=JSON_MEDIA_TYPE, headers={**NO_STORE, **(headers or {})}
    )

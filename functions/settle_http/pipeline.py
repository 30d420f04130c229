"""What every portal call goes through before its service.

Size limit, signature, replay check, the route's account id, the Idempotency-Key header (settlements), JSON, the
model, and the body's bindings: it must name the route's account and, for a settlement, the header's key, so that
the signature over the body covers both.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import ValidationError

from functions.settle_http.models import IDEMPOTENCY_KEY_PATTERN, MAX_BODY_BYTES, AccountRequest, IdempotentRequest
from functions.settle_http.problems import (
    ACCOUNT_MISMATCH,
    BAD_JSON,
    IDEMPOTENCY_KEY_MISMATCH,
    INTERNAL,
    JSON_MEDIA_TYPE,
    MISSING_IDEMPOTENCY_KEY,
    TOO_LARGE,
    UNSUPPORTED_MEDIA,
    FieldError,
    concurrency_problem,
    domain_problem,
    problem,
    unavailable_problem,
    validation_problem,
    webhook_problem,
)
from shared import bootstrap
from shared.domain.errors import ConcurrencyError, DomainError, TransientStorageError
from shared.domain.model import IDENTIFIER_PATTERN
from shared.domain.settle_balance import AccountNotFoundError
from shared.webhooks import WebhookError, WebhookVerifier, request_fingerprint

log = logging.getLogger(__name__)
M = TypeVar("M", bound=AccountRequest)
Handler = Callable[[bootstrap.Dependencies, str, M], func.HttpResponse]
_ACCOUNT_ID = re.compile(IDENTIFIER_PATTERN)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def handle(
    req: func.HttpRequest,
    model: type[M],
    handler: Handler[M],
    pointers: dict[type[DomainError], str] | None = None,
    *,
    signed: bool = True,
) -> func.HttpResponse:
    """Run one call through the checks, then `handler`; every refusal is problem+json.

    Portal calls are `signed` (Standard Webhooks); support tools' admin-level calls are authenticated by the host's
    admin key alone, and go through every other check.
    """
    try:
        return _checked(req, model, handler, signed=signed)
    except DomainError as error:
        return domain_problem(error, pointers)
    except WebhookError as error:
        return webhook_problem(error)
    except ConcurrencyError as error:
        return concurrency_problem(error)
    except TransientStorageError as error:
        log.warning("storage unavailable: %s", error)
        return unavailable_problem(error)
    except Exception:
        log.exception("unexpected error in %s", urlsplit(req.url).path)
        return problem(INTERNAL, "an unexpected error occurred; it was logged")


class _RefusedError(Exception):
    def __init__(self, response: func.HttpResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def _checked(req: func.HttpRequest, model: type[M], handler: Handler[M], *, signed: bool) -> func.HttpResponse:
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        return problem(TOO_LARGE, f"the body may hold at most {MAX_BODY_BYTES} bytes")
    deps = bootstrap.http_dependencies()
    with deps.telemetry.invocation(f"http {model.__name__}"):
        if signed:
            _authenticate(req, deps, body)
        account_id = req.route_params.get("accountId", "")
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise AccountNotFoundError("no such account")  # an id that cannot exist is not found
        try:
            key = _idempotency_key(req) if issubclass(model, IdempotentRequest) else None
            request = _parse(req, model, body)
            _check_bindings(request, account_id, key)
        except _RefusedError as refused:
            return refused.response
        return handler(deps, account_id, request)


def _idempotency_key(req: func.HttpRequest) -> str:
    key = req.headers.get("idempotency-key") or ""
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        raise _RefusedError(
            problem(
                MISSING_IDEMPOTENCY_KEY,
                "send a unique Idempotency-Key (1-255 printable ASCII characters) with each payment attempt",
                [FieldError("missing or not 1-255 printable ASCII characters", header="Idempotency-Key")],
            )
        )
    return key


def _check_bindings(request: AccountRequest, account_id: str, key: str | None) -> None:
    """The signed body must name the route's account and the header's Idempotency-Key."""
    if request.account_id != account_id:
        raise _RefusedError(
            problem(
                ACCOUNT_MISMATCH,
                "the body's accountId is not the account of the route; sign a body for this account",
                [
                    FieldError("not the account of the route", pointer="#/accountId"),
                    FieldError("another account than the body's", parameter="accountId"),
                ],
            )
        )
    if key is not None and isinstance(request, IdempotentRequest) and request.idempotency_key != key:
        raise _RefusedError(
            problem(
                IDEMPOTENCY_KEY_MISMATCH,
                "the body's idempotencyKey is not the Idempotency-Key header; sign a body with the key you send",
                [
                    FieldError("not the Idempotency-Key header", pointer="#/idempotencyKey"),
                    FieldError("another key than the body's", header="Idempotency-Key"),
                ],
            )
        )


def _authenticate(req: func.HttpRequest, deps: bootstrap.Dependencies, body: bytes) -> None:
    """Standard Webhooks signature and timestamp, then the replay ledger; raises WebhookError."""
    settings = deps.settings
    verifier = WebhookVerifier(
        settings.portal_webhook_secret.get_secret_value(),
        tolerance=timedelta(seconds=settings.webhook_tolerance_seconds),
        clock=deps.wall_clock,  # a test clock must never shift or widen the signature window
    )
    webhook = verifier.verify(dict(req.headers), body)
    fingerprint = request_fingerprint(req.method, urlsplit(req.url).path, body)
    deps.webhooks.remember(webhook, fingerprint)


def _parse(req: func.HttpRequest, model: type[M], body: bytes) -> M:
    content_type = (req.headers.get("content-type") or JSON_MEDIA_TYPE).split(";")[0].strip().lower()
    if content_type != JSON_MEDIA_TYPE and not content_type.endswith("+json"):
        fault = FieldError(f"use {JSON_MEDIA_TYPE}", header="Content-Type")
        raise _RefusedError(problem(UNSUPPORTED_MEDIA, f"got {content_type}", [fault]))
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        fault = FieldError("not JSON", pointer="#")
        raise _RefusedError(problem(BAD_JSON, f"the body is not JSON: {error}", [fault])) from error
    except RecursionError as error:  # small enough to pass the size limit, yet nested deeper than the parser goes
        fault = FieldError("nested too deeply", pointer="#")
        raise _RefusedError(problem(BAD_JSON, "the body is nested too deeply to be a request", [fault])) from error
    except ValueError as error:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        fault = FieldError("a number with too many digits", pointer="#")
        raise _RefusedError(problem(BAD_JSON, "the body holds a number too long to read", [fault])) from error
    if not isinstance(payload, dict):
        raise _RefusedError(
            problem(BAD_JSON, "the body must be a JSON object", [FieldError("not an object", pointer="#")])
        )
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise _RefusedError(validation_problem(error)) from error

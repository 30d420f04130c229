"""What every portal call goes through before its service: size limit, signature, replay check, JSON, model."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

import azure.functions as func
from pydantic import BaseModel, ValidationError

from functions.settle_http.models import MAX_BODY_BYTES
from functions.settle_http.problems import (
    BAD_JSON,
    INTERNAL,
    JSON_MEDIA_TYPE,
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
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[bootstrap.Dependencies, str, M], func.HttpResponse]
_ACCOUNT_ID = re.compile(IDENTIFIER_PATTERN)


def handle(
    req: func.HttpRequest,
    model: type[M],
    handler: Handler[M],
    pointers: dict[type[DomainError], str] | None = None,
) -> func.HttpResponse:
    """Run one signed portal call through the checks, then `handler`; every refusal is problem+json."""
    try:
        return _checked(req, model, handler)
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


def _checked(req: func.HttpRequest, model: type[M], handler: Handler[M]) -> func.HttpResponse:
    body = req.get_body()
    if len(body) > MAX_BODY_BYTES:
        return problem(TOO_LARGE, f"the body may hold at most {MAX_BODY_BYTES} bytes")
    deps = bootstrap.dependencies()
    with deps.telemetry.invocation(f"http {model.__name__}"):
        _authenticate(req, deps, body)
        try:
            request = _parse(req, model, body)
        except _RefusedError as refused:
            return refused.response
        account_id = req.route_params.get("accountId", "")
        if not _ACCOUNT_ID.fullmatch(account_id):
            raise AccountNotFoundError("no such account")  # an id that cannot exist is not found
        return handler(deps, account_id, request)


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
    if not isinstance(payload, dict):
        raise _RefusedError(
            problem(BAD_JSON, "the body must be a JSON object", [FieldError("not an object", pointer="#")])
        )
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise _RefusedError(validation_problem(error)) from error

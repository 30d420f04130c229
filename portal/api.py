"""The function app's settle-balance API, called the way a real portal calls it: signed POSTs with a function key."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal.signing import new_webhook_id, webhook_headers

FUNCTION_KEY_HEADER = "x-functions-key"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_RESPONSE_BYTES = 1_000_000
TIMEOUT_SECONDS = 30.0

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class ApiProblem(Exception):  # noqa: N818 - named after RFC 9457 "problem details"
    """An RFC 9457 problem answered by the API (or a transport failure, with status 502)."""

    def __init__(
        self,
        *,
        status: int,
        title: str,
        detail: str = "",
        fields: tuple[FieldProblem, ...] = (),
        body: JsonObject | None = None,
    ) -> None:
        super().__init__(f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.fields = fields
        self.body = body or {}

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    @property
    def new_quote(self) -> JsonObject | None:
        """The fresh quote a 409 'stale quote' answer carries, if any."""
        for candidate in (self.body.get("quote"), self.body.get("newQuote"), self.body):
            if isinstance(candidate, dict) and "quoteVersion" in candidate and "total" in candidate:
                return candidate
        return None


def problem_from(status: int, body: bytes) -> ApiProblem:
    """Read a problem+json body; anything else becomes a problem with the HTTP status as its title."""
    try:
        document = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    title = str(document.get("title") or f"HTTP {status}")
    detail = str(document.get("detail") or "")
    return ApiProblem(status=status, title=title, detail=detail, fields=_field_problems(document), body=document)


def _field_problems(document: JsonObject) -> tuple[FieldProblem, ...]:
    found: list[FieldProblem] = []
    for key in ("errors", "invalid-params", "invalidParams"):
        entries = document.get(key)
        if not isinstance(entries, list):
            continue
        for entry in entries:
            if isinstance(entry, dict):
                name = next((str(entry[k]) for k in _FIELD_NAMES if entry.get(k)), "")
                message = next((str(entry[k]) for k in ("message", "reason", "detail") if entry.get(k)), "")
                found.append(FieldProblem(field=_readable_field(name), message=message))
    if not found and document.get("field"):
        found.append(FieldProblem(field=str(document["field"]), message=str(document.get("detail") or "")))
    return tuple(found)


_FIELD_NAMES = ("field", "name", "pointer", "header", "parameter")


def _readable_field(name: str) -> str:
    """A JSON pointer such as `#/expectedTotal/amount` as `expectedTotal.amount`; other names unchanged."""
    if not name.startswith("#"):
        return name
    parts = name.removeprefix("#").strip("/").split("/")
    return ".".join(part.replace("~1", "/").replace("~0", "~") for part in parts if part)


class SettleApi:
    """One method per route of docs/settlement-api.md.

    Each body names the account of its route and the acting principal (a settlement's also its Idempotency-Key),
    so that the signature over the body binds the call to them.
    """

    def __init__(
        self,
        base_url: str,
        *,
        signing_key: bytes,
        function_key: str,
        clock: Callable[[], float] = time.time,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._key = signing_key
        self._function_key = function_key
        self._clock = clock
        self._timeout = timeout

    def overview(self, account_id: str, principal_id: str) -> JsonObject:
        return self._post(account_id, "overview", {"principalId": principal_id})

    def quote(
        self, account_id: str, principal_id: str, subscription_id: str, payment_method_id: str | None = None
    ) -> JsonObject:
        body: JsonObject = {"principalId": principal_id, "subscriptionId": subscription_id}
        if payment_method_id:
            body["paymentMethodId"] = payment_method_id
        return self._post(account_id, "settlement/quote", body)

    def settle(
        self,
        account_id: str,
        principal_id: str,
        *,
        subscription_id: str,
        payment_method: JsonObject,
        expected_total: JsonObject,
        idempotency_key: str,
        quote_version: str | None = None,
    ) -> JsonObject:
        body: JsonObject = {
            "principalId": principal_id,
            "idempotencyKey": idempotency_key,
            "subscriptionId": subscription_id,
            "paymentMethod": payment_method,
            "expectedTotal": expected_total,
        }
        if quote_version:
            body["quoteVersion"] = quote_version
        return self._post(account_id, "settlement", body, {IDEMPOTENCY_KEY_HEADER: idempotency_key})

    def notification_email(self, account_id: str, principal_id: str, new_address: str | None = None) -> JsonObject:
        body: JsonObject = {"principalId": principal_id}
        if new_address is not None:
            body["notificationEmail"] = new_address
        return self._post(account_id, "notification-email", body)

    def url(self, account_id: str, route: str) -> str:
        return f"{self.base_url}/accounts/{urllib.parse.quote(account_id, safe='')}/{route}"

    def _post(self, account_id: str, route: str, body: JsonObject, extra: dict[str, str] | None = None) -> JsonObject:
        raw = json.dumps({"accountId": account_id, **body}, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, application/problem+json",
            FUNCTION_KEY_HEADER: self._function_key,
            **webhook_headers(self._key, new_webhook_id(), int(self._clock()), raw),
            **(extra or {}),
        }
        request = urllib.request.Request(self.url(account_id, route), data=raw, method="POST", headers=headers)  # noqa: S310 - our own configured http(s) base URL
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as reply:  # noqa: S310 - as above
                payload = reply.read(MAX_RESPONSE_BYTES)
        except urllib.error.HTTPError as error:
            raise problem_from(error.code, error.read(MAX_RESPONSE_BYTES)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise ApiProblem(status=502, title="unreachable", detail=f"{self.base_url}: {reason}") from None
        try:
            document = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiProblem(
                status=502, title="unreadable", detail="the API answered with something else than JSON"
            ) from None
        if not isinstance(document, dict):
            raise ApiProblem(
                status=502, title="unreadable", detail="the API answered with something else than an object"
            )
        return document

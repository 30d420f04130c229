"""Event Grid triggers on loopback, as the Functions host runs them: `POST /runtime/webhooks/eventgrid?functionName=`.

Event Grid says what a request is in the `aeg-event-type` header: `SubscriptionValidation` is answered with
`{"validationResponse": <validationCode>}`, `Notification` carries events (an array in the Event Grid schema, an
array or one event in the CloudEvents schema) and runs the function once per event, `Unsubscribe` is accepted;
anything else is 400. An unknown function is 404. Like the host: 202 when every invocation succeeded, 500 (so Event
Grid delivers again) when one failed. Each event reaches the function as the Python worker hands it over, made by
azure.functions' own converter: a `func.EventGridEvent`, or a `func.CloudEvent` for a CloudEvents event.

The HTTP server only passes requests for WEBHOOK_PATH here (`handles`) and sends back what `handle` answers.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

if TYPE_CHECKING:
    from devhost.app_loader import EventGridFunction
    from devhost.invoker import Invoker

logger = logging.getLogger("devhost.eventgrid")

WEBHOOK_PATH = "/runtime/webhooks/eventgrid"
EVENT_TYPE_HEADER = "aeg-event-type"
_JSON = {"Content-Type": "application/json; charset=utf-8"}
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, status: HTTPStatus, message: str | None = None) -> WebhookAnswer:
        return cls(status.value, f"{message or status.phrase}\n".encode(), dict(_TEXT))


class InvalidDeliveryError(ValueError):
    """The request body is not what Event Grid sends."""


class EventGridEndpoint:
    """The host's Event Grid webhook for the app's Event Grid functions, guarded by the local function key."""

    def __init__(self, functions: Iterable[EventGridFunction], invoker: Invoker, function_key: str) -> None:
        self._functions = {function.name: function for function in functions}
        self._invoker = invoker
        self._function_key = function_key.encode()

    @property
    def function_names(self) -> list[str]:
        return sorted(self._functions)

    @staticmethod
    def handles(path: str) -> bool:
        return path.rstrip("/").lower() == WEBHOOK_PATH

    @staticmethod
    def url_of(base_url: str, function_name: str) -> str:
        return f"{base_url}{WEBHOOK_PATH}?functionName={function_name}"

    def handle(self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes) -> WebhookAnswer:
        """Answer one request to the webhook (`headers` with lower-case names)."""
        params = dict(parse_qsl(query, keep_blank_values=True))
        supplied = headers.get("x-functions-key") or params.get("code") or ""
        if not hmac.compare_digest(supplied.encode(), self._function_key):
            return WebhookAnswer.text(HTTPStatus.UNAUTHORIZED)
        name = params.get("functionName", "")
        function = self._functions.get(name)
        if function is None:
            known = ", ".join(self.function_names)
            return WebhookAnswer.text(HTTPStatus.NOT_FOUND, f"cannot find function: '{name}' (known: {known})")
        try:
            return self._answer(function, headers.get(EVENT_TYPE_HEADER, "").lower(), body)
        except InvalidDeliveryError as error:
            return WebhookAnswer.text(HTTPStatus.BAD_REQUEST, str(error))

    def _answer(self, function: EventGridFunction, kind: str, body: bytes) -> WebhookAnswer:
        if kind == "subscriptionvalidation":
            return _validation_answer(body, function.name)
        if kind == "notification":
            return self._notify(function, _events(body))
        if kind == "unsubscribe":
            return WebhookAnswer(HTTPStatus.ACCEPTED.value)
        message = f"{EVENT_TYPE_HEADER} must be SubscriptionValidation, Notification or Unsubscribe"
        return WebhookAnswer.text(HTTPStatus.BAD_REQUEST, message)

    def _notify(self, function: EventGridFunction, events: list[dict[str, Any]]) -> WebhookAnswer:
        failed = 0
        for event in events:
            trigger_value = EventGridEventInConverter.decode(Datum(json.dumps(event), "json"), trigger_metadata=None)
            try:
                self._invoker.invoke(function, trigger_value, f"EventGrid trigger fired for event {event.get('id')}")
            except Exception:  # the invoker logged it; Event Grid is told to deliver again
                failed += 1
        if failed:
            return WebhookAnswer.text(HTTPStatus.INTERNAL_SERVER_ERROR, f"{failed} of {len(events)} invocations failed")
        return WebhookAnswer(HTTPStatus.ACCEPTED.value)


def _validation_answer(body: bytes, function_name: str) -> WebhookAnswer:
    document = _json(body)
    first = document[0] if isinstance(document, list) and document else document
    data = first.get("data") if isinstance(first, dict) else None
    if isinstance(data, str):  # a CloudEvents validation event may carry its data as JSON text
        data = _json(data.encode())
    code = data.get("validationCode") if isinstance(data, dict) else None
    if not isinstance(code, str):
        raise InvalidDeliveryError("a SubscriptionValidation event carries data.validationCode")
    logger.info("Event Grid subscription handshake for function %s", function_name)
    return WebhookAnswer(HTTPStatus.OK.value, json.dumps({"validationResponse": code}).encode(), dict(_JSON))


def _events(body: bytes) -> list[dict[str, Any]]:
    document = _json(body)
    events = document if isinstance(document, list) else [document]
    if not all(isinstance(event, dict) for event in events):
        raise InvalidDeliveryError("the body must be a JSON object or an array of JSON objects (events)")
    return events


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidDeliveryError(f"the body is not JSON: {error}") from None

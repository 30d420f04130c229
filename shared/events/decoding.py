"""Turn a queue message body into an incoming event, or an Event Grid event's data into an email delivery report,
or into a reason why it is not one."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from pydantic import ValidationError

from shared.domain.delivery_reports import EMAIL_DELIVERY_REPORT, EmailDeliveryReport
from shared.domain.payment_events import (
    ACCOUNT_UPDATED,
    PAYMENT_FAILED,
    PAYMENT_RECEIVED,
    AccountUpdatedEvent,
    IncomingEvent,
    PaymentFailedEvent,
    PaymentReceivedEvent,
)

PAYMENT_EVENTS_QUEUE = "payment-failed"
MAX_REASON_LENGTH = 1000
_BASE64 = re.compile(
    r"(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?|[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}="
)
_EVENT_MODELS: dict[str, type[IncomingEvent]] = {
    PAYMENT_FAILED: PaymentFailedEvent,
    PAYMENT_RECEIVED: PaymentReceivedEvent,
    ACCOUNT_UPDATED: AccountUpdatedEvent,
}
EVENT_TYPES = tuple(_EVENT_MODELS)


class InvalidEventError(ValueError):
    """The message is not a valid payment event; retrying it cannot help."""

    def __init__(self, reason: str, event_id: str | None = None, event_type: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason[:MAX_REASON_LENGTH]
        self.event_id = event_id
        self.event_type = event_type


def decode_payment_event(body: bytes) -> IncomingEvent:
    """Parse a CloudEvents JSON body (or base64 of one, as with `messageEncoding: none`) into its event model."""
    document = _json_object(body)
    event_id = _readable_id(document.get("id"))
    event_type = document.get("type")
    if not isinstance(event_type, str):
        raise InvalidEventError("type: Field required (a string)", event_id)
    model = _EVENT_MODELS.get(event_type)
    if model is None:
        known = " or ".join(_EVENT_MODELS)
        raise InvalidEventError(f"type: unknown event type {event_type[:64]!r}; expected {known}", event_id)
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidEventError(validation_reason(error), event_id, event_type) from None


def decode_delivery_report(event_type: str | None, data: object) -> EmailDeliveryReport:
    """The report in the `data` of an Event Grid event (either schema; JSON text is read too)."""
    if event_type != EMAIL_DELIVERY_REPORT:
        raise InvalidEventError(f"type: {str(event_type)[:64]!r} is not {EMAIL_DELIVERY_REPORT}")
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            raise InvalidEventError("data is not valid JSON", event_type=event_type) from None
    if not isinstance(data, dict):
        raise InvalidEventError("data must be a JSON object", event_type=event_type)
    try:
        return EmailDeliveryReport.model_validate(data)
    except ValidationError as error:
        raise InvalidEventError(validation_reason(error), event_type=event_type) from None


def validation_reason(error: ValidationError) -> str:
    """The field paths and messages of a validation error, without the offending values (they may be personal)."""
    issues = error.errors(include_input=False, include_url=False)
    # A tuple whose item failed also reports itself as too short: noise next to the real cause.
    issues = [
        issue
        for issue in issues
        if not (
            issue["type"] == "too_short"
            and any(
                len(other["loc"]) > len(issue["loc"]) and other["loc"][: len(issue["loc"])] == issue["loc"]
                for other in issues
            )
        )
    ]
    return "; ".join(f"{field_path(issue['loc'])}: {issue['msg']}" for issue in issues)[:MAX_REASON_LENGTH]


def field_path(location: tuple[int | str, ...]) -> str:
    """`("data", "charges", 0, "amount")` -> `data.charges[0].amount`, as the event's JSON names them."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path or "(event)"


def _json_object(body: bytes) -> dict[str, Any]:
    text = _text(body)
    try:
        document = _parsed(text)
    except json.JSONDecodeError as error:
        # With `messageEncoding: none` a sender's base64 reaches us as is: accept base64 of a JSON event too.
        decoded = _base64_or_none(text)
        if decoded is None:
            raise InvalidEventError(
                f"body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
            ) from None
        try:
            document = _parsed(_text(decoded))
        except json.JSONDecodeError:
            raise InvalidEventError("body is base64, but what it encodes is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidEventError("body must be a JSON object (a CloudEvents envelope)")
    return document


def _parsed(text: str) -> Any:
    """JSON, or InvalidEventError for JSON no event can be: retrying it cannot help (only JSONDecodeError passes)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise InvalidEventError("body is nested too deeply to be an event") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise InvalidEventError("body holds a number with too many digits to be an event") from None


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidEventError("body is not UTF-8 text") from None


def _base64_or_none(text: str) -> bytes | None:
    compact = "".join(text.split())
    if not _BASE64.fullmatch(compact):
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def _readable_id(value: object) -> str | None:
    if isinstance(value, str) and value and len(value) <= 128 and value.isprintable():
        return value
    return None

from __future__ import annotations

import logging

import azure.functions as func

from shared.bootstrap import Dependencies, dependencies
from shared.domain.errors import DomainError
from shared.domain.payment_events import IncomingEvent, PaymentFailedEvent, PaymentReceivedEvent
from shared.events.decoding import PAYMENT_EVENTS_QUEUE, InvalidEventError, decode_payment_event
from shared.telemetry import EVENT_ID

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("payment_failed")
@bp.queue_trigger(arg_name="msg", queue_name=PAYMENT_EVENTS_QUEUE, connection="AzureWebJobsStorage")
def payment_failed(msg: func.QueueMessage, context: func.Context | None = None) -> None:
    """Apply a billing-engine event; bad input is set aside at once, storage trouble raises so the host retries."""
    deps = dependencies()
    body = msg.get_body()
    event_id: str | None = None
    event_type: str | None = None
    invocation = {"invocation_id": context.invocation_id} if context is not None else {}
    try:
        with deps.telemetry.invocation("payment_failed", **invocation) as span:
            event = decode_payment_event(body)
            event_id, event_type = event.id, event.type
            span.add({EVENT_ID: event.id})
            _dispatch(deps, event)
    except InvalidEventError as error:
        _reject(deps, msg, body, error.reason, event_id=error.event_id, event_type=error.event_type)
    except DomainError as error:
        _reject(deps, msg, body, f"{type(error).__name__}: {error}", event_id=event_id, event_type=event_type)


def _dispatch(deps: Dependencies, event: IncomingEvent) -> None:
    if isinstance(event, PaymentFailedEvent):
        deps.apply_payment_failed(event)
    elif isinstance(event, PaymentReceivedEvent):
        deps.apply_payment_received(event)
    else:
        deps.apply_account_updated(event)


def _reject(
    deps: Dependencies,
    msg: func.QueueMessage,
    body: bytes,
    reason: str,
    *,
    event_id: str | None,
    event_type: str | None,
) -> None:
    rejection = deps.record_rejection(
        body=body,
        reason=reason,
        event_id=event_id,
        event_type=event_type,
        message_id=msg.id,
        dequeue_count=msg.dequeue_count,
    )
    log.warning("rejected event %s (rejection %s): %s", event_id or "(unreadable id)", rejection.id, reason)

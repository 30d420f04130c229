from __future__ import annotations

import logging

import azure.functions as func

from shared.bootstrap import dependencies
from shared.events.decoding import InvalidEventError, decode_delivery_report
from shared.telemetry import EVENT_ID

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("email_delivery_report")
@bp.event_grid_trigger(arg_name="event")
def email_delivery_report(event: func.EventGridEvent, context: func.Context | None = None) -> None:
    """Apply one delivery report; one that is not a report is logged and acknowledged, storage trouble raises (so
    Event Grid delivers it again)."""
    deps = dependencies()
    invocation = {"invocation_id": context.invocation_id} if context is not None else {}
    with deps.telemetry.invocation("email_delivery_report", **invocation) as span:
        span.add({EVENT_ID: event.id})
        try:
            report = decode_delivery_report(_event_type(event), event.get_json())
        except InvalidEventError as error:
            log.warning("event %s is not an email delivery report, acknowledged: %s", event.id, error.reason)
            return
        deps.apply_delivery_report(report)


def _event_type(event: func.EventGridEvent | func.CloudEvent) -> str | None:
    # The worker hands a CloudEvents-schema delivery over as func.CloudEvent (azure-functions 1.26), which names
    # the type `type`; the Event Grid schema's func.EventGridEvent names it `event_type`.
    if isinstance(event, func.CloudEvent):
        return event.type
    return event.event_type

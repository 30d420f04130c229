from __future__ import annotations

import logging

import azure.functions as func

bp = func.Blueprint()
log = logging.getLogger(__name__)
PAYMENT_EVENTS_QUEUE = "payment-failed"


@bp.function_name("payment_failed")
@bp.queue_trigger(arg_name="msg", queue_name=PAYMENT_EVENTS_QUEUE, connection="AzureWebJobsStorage")
def payment_failed(msg: func.QueueMessage) -> None:
    log.info("received message %s (dequeue count %s)", msg.id, msg.dequeue_count)

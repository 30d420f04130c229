from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import azure.functions as func

from shared.bootstrap import Dependencies, dependencies
from shared.domain.errors import TransientStorageError
from shared.domain.retention_work import (
    RETENTION_WORK_QUEUE,
    AccountReview,
    Housekeeping,
    InvalidWorkItemError,
    ShardSweep,
    decode_work,
)
from shared.services.retention_work import AccountReviewFailedError

bp = func.Blueprint()
log = logging.getLogger(__name__)
HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
# The Functions host's default when host.json does not say.
DEFAULT_MAX_DEQUEUE_COUNT = 5


@functools.cache
def max_dequeue_count(host_json: Path = HOST_JSON) -> int:
    """host.json's `extensions.queues.maxDequeueCount`: after that many attempts the host gives up on a message."""
    try:
        queues = json.loads(host_json.read_text())["extensions"]["queues"]
        return int(queues.get("maxDequeueCount", DEFAULT_MAX_DEQUEUE_COUNT))
    except (OSError, KeyError, TypeError, ValueError):
        return DEFAULT_MAX_DEQUEUE_COUNT


@bp.function_name("retention_worker")
@bp.queue_trigger(arg_name="msg", queue_name=RETENTION_WORK_QUEUE, connection="AzureWebJobsStorage")
def retention_worker(msg: func.QueueMessage, context: func.Context | None = None) -> None:
    """Run one work item. Storage trouble raises so the host retries; a failure on the last attempt is set aside
    with its reason (the account stays due), so the poison queue is never where an account's work ends up."""
    deps = dependencies()
    invocation = {"invocation_id": context.invocation_id} if context is not None else {}
    with deps.telemetry.invocation("retention_worker", **invocation):
        handle_work(deps, msg.get_body(), message_id=msg.id, dequeue_count=msg.dequeue_count)


def handle_work(deps: Dependencies, body: bytes, *, message_id: str | None, dequeue_count: int | None) -> None:
    try:
        item = decode_work(body)
    except InvalidWorkItemError as error:
        _set_aside(deps, body, str(error), message_id=message_id, dequeue_count=dequeue_count)
        return
    try:
        _run(deps, item)
    except Exception as error:
        attempts = dequeue_count or 1
        if attempts < max_dequeue_count():
            raise
        # Our own errors' messages name ids only; any other's may quote personal data, so only its type is kept.
        known = isinstance(error, TransientStorageError | AccountReviewFailedError)
        detail = f"{type(error).__name__}: {error}" if known else type(error).__name__
        # Storage trouble is not the accounts' fault: the item is recorded, but its accounts are not passed by, and
        # the next firing hands them out again.
        _set_aside(
            deps,
            body,
            f"failed {attempts} attempts: {detail}",
            message_id=message_id,
            dequeue_count=dequeue_count,
            pass_by_review=item
            if isinstance(item, AccountReview) and not isinstance(error, TransientStorageError)
            else None,
        )


def _run(deps: Dependencies, item: ShardSweep | AccountReview | Housekeeping) -> None:
    if isinstance(item, ShardSweep):
        swept = deps.sweep_retention_shard(item)
        log.info("retention sweep of shard %d: %s", item.shard, swept.model_dump(mode="json"))
    elif isinstance(item, AccountReview):
        reviewed = deps.review_retention_batch(item)
        log.info(
            "retention review of %d account(s): %s",
            len(item.account_ids),
            reviewed.model_dump(mode="json", exclude={"actions"}),
        )
    else:
        purged = deps.retention_housekeeping(item)
        log.info("retention housekeeping: %d expired webhook id(s) purged", purged)


def _set_aside(
    deps: Dependencies,
    body: bytes,
    reason: str,
    *,
    message_id: str | None,
    dequeue_count: int | None,
    pass_by_review: AccountReview | None = None,
) -> None:
    rejection = deps.set_aside_retention_work(
        body=body, reason=reason, message_id=message_id, dequeue_count=dequeue_count, pass_by_review=pass_by_review
    )
    log.warning("retention work item set aside (rejection %s): %s", rejection.id, reason)

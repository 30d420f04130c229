from __future__ import annotations

import logging

import azure.functions as func

from shared.bootstrap import dependencies
from shared.settings import Settings

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("retention")
@bp.timer_trigger(arg_name="timer", schedule=Settings.load().retention_schedule, run_on_startup=False)
def retention(timer: func.TimerRequest, context: func.Context | None = None) -> None:
    """Start a retention pass: one sweep per due-index shard on the work queue; the queue workers do the reviews."""
    if timer.past_due:
        # The occurrence started late (host down or busy); the pass covers everything due since.
        log.warning("retention pass started late (timer.past_due)")
    deps = dependencies()
    invocation = {"invocation_id": context.invocation_id} if context is not None else {}
    with deps.telemetry.invocation("retention", **invocation):
        started = deps.start_retention_pass(deps.clock.now())
    log.info("retention pass started: %s", {"past_due": timer.past_due, **started.model_dump(mode="json")})

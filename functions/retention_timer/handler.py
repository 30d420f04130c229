from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func

from shared.bootstrap import dependencies
from shared.settings import Settings

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("retention")
@bp.timer_trigger(arg_name="timer", schedule=Settings.load().retention_schedule, run_on_startup=False)
def retention(timer: func.TimerRequest, context: func.Context | None = None) -> None:
    """Run every retention step that is due; what the time budget leaves over stays due for the next run."""
    if timer.past_due:
        # The occurrence started late (host down or busy); the run catches up on everything due since.
        log.warning("retention run started late (timer.past_due)")
    deps = dependencies()
    invocation = {"invocation_id": context.invocation_id} if context is not None else {}
    with deps.telemetry.invocation("retention", **invocation):
        report = deps.run_retention(
            now=deps.clock.now(),
            time_budget=timedelta(seconds=deps.settings.retention_time_budget_seconds),
        )
    log.info("retention run finished: %s", {"past_due": timer.past_due, **report.summary()})

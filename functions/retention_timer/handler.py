from __future__ import annotations

import logging

import azure.functions as func

from shared.settings import Settings

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("retention")
@bp.timer_trigger(arg_name="timer", schedule=Settings.load().retention_schedule, run_on_startup=False)
def retention(timer: func.TimerRequest) -> None:
    log.info("retention run (past due: %s)", timer.past_due)

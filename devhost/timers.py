"""Timer triggers: one thread per function, firing at each scheduled UTC occurrence, on one instance at a time."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from azure.functions.timer import TimerRequest

from devhost.settings import HOST_ID_SETTING, STORAGE_SETTING
from devhost.singleton import Claim, TimerLock

if TYPE_CHECKING:
    from devhost.app_loader import TimerFunction
    from devhost.invoker import Invoker

logger = logging.getLogger("devhost.timer")

PAST_DUE_AFTER = timedelta(seconds=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


def lock_from_environment(function_name: str) -> TimerLock | None:
    """The singleton lock in `AzureWebJobsStorage`, under this host's id; None (and a warning) without one."""
    try:
        return TimerLock(os.environ[STORAGE_SETTING], os.environ[HOST_ID_SETTING], function_name)
    except (KeyError, ValueError) as error:
        logger.warning("[%s] runs without a singleton lock (no usable blob storage: %s)", function_name, error)
        return None


class TimerRunner:
    def __init__(
        self,
        function: TimerFunction,
        invoker: Invoker,
        clock: Callable[[], datetime] = utc_now,
        lock: TimerLock | None = None,
    ) -> None:
        self.function = function
        self._invoker = invoker
        self._clock = clock
        self._lock = lock if lock is not None else lock_from_environment(function.name)
        self._stopping = threading.Event()
        self._last: datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"devhost-timer-{function.name}", daemon=True)

    def next_occurrence(self) -> datetime:
        return self.function.schedule.next_after(self._clock())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def join(self) -> None:
        """Wait for the timer thread, including an invocation in progress."""
        self._thread.join()

    def _run(self) -> None:
        if self.function.run_on_startup:
            self._fire(self._clock(), reason="Timer fired at startup (run_on_startup)")
        due = self.next_occurrence()
        while not self._stopping.is_set():
            remaining = (due - self._clock()).total_seconds()
            if remaining > 0:
                self._stopping.wait(remaining)
                continue
            self._fire(due, reason=f"Timer fired for the occurrence at {due.isoformat()}")
            due = self.function.schedule.next_after(max(due, self._clock()))

    def _fire(self, scheduled: datetime, reason: str) -> None:
        if self._lock is None:
            self._invoke(scheduled, reason)
            return
        with self._lock.hold(scheduled) as claim:
            if claim is Claim.TAKEN:
                self._invoke(scheduled, reason)
            else:
                logger.info("[%s] skipped the occurrence at %s: %s", self.function.name, scheduled.isoformat(), claim)

    def _invoke(self, scheduled: datetime, reason: str) -> None:
        started = self._clock()
        past_due = started - scheduled > PAST_DUE_AFTER
        next_due = self.function.schedule.next_after(max(scheduled, started))
        request = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (self._last or scheduled).isoformat(),
                "Next": next_due.isoformat(),
                "LastUpdated": started.isoformat(),
            },
            schedule={"AdjustForDST": False},
        )
        self._last = started
        # The invoker has logged any failure; a timer has no retry and simply waits for its next occurrence.
        with contextlib.suppress(Exception):
            self._invoker.invoke(self.function, request, reason + (" (past due)" if past_due else ""))

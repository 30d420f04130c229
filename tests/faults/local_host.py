"""The local Functions host running the real app (function_app.py at the repository root) for the fault tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from devhost.process import LocalHostProcess as LocalHost
from devhost.process import start_local_host as start_host_process
from tests.support.local_host import app_environment

FUNCTION_KEY = "fault-suite-function-key"
# Far from any test run, so the retention timer never fires while a test watches the queue or the API.
IDLE_SCHEDULE = "0 0 0 1 1 *"

__all__ = ["FUNCTION_KEY", "LocalHost", "start_local_host", "wait_for"]


def start_local_host(connection_string: str, directory: Path, outbox: Path) -> LocalHost:
    environment = app_environment(
        connection_string, outbox, LOCAL_FUNCTION_KEY=FUNCTION_KEY, RETENTION_SCHEDULE=IDLE_SCHEDULE
    )
    return start_host_process(directory, environment, timeout=60)


def wait_for(condition: Callable[[], bool], what: str, timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)

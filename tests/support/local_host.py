"""The local host on the real function_app.py, for end-to-end tests; and waiting with a deadline."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from devhost.process import LocalHostProcess, start_local_host

# Settings a developer may have exported that must not reach a test's host.
_UNSET = {"ACS_CONNECTION_STRING", "PORTAL_WEBHOOK_SECRET", "WEBSITE_SITE_NAME"}


def app_environment(connection_string: str, outbox_dir: Path, **settings: str) -> dict[str, str]:
    return {
        **{name: value for name, value in os.environ.items() if name not in _UNSET},
        "AzureWebJobsStorage": connection_string,
        "OUTBOX_DIR": str(outbox_dir),
        **settings,
    }


def start_app(directory: Path, connection_string: str, **settings: str) -> LocalHostProcess:
    """`python -m devhost` on the real app, its storage pointed at the test's Azurite, emails in `directory/outbox`."""
    return start_local_host(directory, app_environment(connection_string, directory / "outbox", **settings))


def wait_for(
    condition: Callable[[], bool], what: str, host: LocalHostProcess | None = None, timeout: float = 30.0
) -> None:
    """Poll until `condition` holds; fail with the host's log if it dies or the deadline passes."""
    deadline = time.monotonic() + timeout
    while not condition():
        if host is not None:
            host.check_alive()
        if time.monotonic() > deadline:
            log = f"; host log:\n{host.log_text()}" if host is not None else ""
            raise AssertionError(f"gave up waiting {timeout} s for {what}{log}")
        time.sleep(0.1)


def outbox_of(host: LocalHostProcess) -> Path:
    """Where a host started by `start_app` writes its emails."""
    return host.log.parent / "outbox"

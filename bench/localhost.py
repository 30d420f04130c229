"""The local Functions host (`python -m devhost`) running the real app as a separate process."""

from __future__ import annotations

import os
from pathlib import Path

from bench.environment import IDLE_RETENTION_SCHEDULE
from devhost.process import LocalHostProcess as LocalHost
from devhost.process import start_local_host as start_host_process

FUNCTION_KEY = "bench-function-key"
START_TIMEOUT = 60.0

__all__ = ["FUNCTION_KEY", "LocalHost", "start_local_host"]


def start_local_host(connection_string: str, directory: Path, outbox: Path) -> LocalHost:
    """Start the host on a free port with its own settings file, and wait for `Host started`."""
    environment = {
        **{name: value for name, value in os.environ.items() if name != "ACS_CONNECTION_STRING"},
        "AzureWebJobsStorage": connection_string,
        "LOCAL_FUNCTION_KEY": FUNCTION_KEY,
        "OUTBOX_DIR": str(outbox),
        "RETENTION_SCHEDULE": IDLE_RETENTION_SCHEDULE,
    }
    return start_host_process(directory, environment, timeout=START_TIMEOUT)

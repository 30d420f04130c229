"""The local Functions host running the real app (function_app.py at the repository root) for the fault tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devhost.azurite import REPO_ROOT, free_port

FUNCTION_KEY = "fault-suite-function-key"
# Far from any test run, so the retention timer never fires while a test watches the queue or the API.
IDLE_SCHEDULE = "0 0 0 1 1 *"


@dataclass
class LocalHost:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_local_host(connection_string: str, directory: Path, outbox: Path) -> LocalHost:
    directory.mkdir(parents=True, exist_ok=True)
    settings = directory / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {}}), encoding="utf-8")
    log = directory / "host.log"
    env = {
        **os.environ,
        "AzureWebJobsStorage": connection_string,
        "LOCAL_FUNCTION_KEY": FUNCTION_KEY,
        "OUTBOX_DIR": str(outbox),
        "RETENTION_SCHEDULE": IDLE_SCHEDULE,
    }
    env.pop("ACS_CONNECTION_STRING", None)
    port = free_port()
    command = [sys.executable, "-m", "devhost", "--app-dir", str(REPO_ROOT), "--port", str(port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--settings", str(settings)], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=log_file
        )
    host = LocalHost(process, port, log)

    def started() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the local host exited with {process.returncode}:\n{host.log_text()[-3000:]}")
        return "Host started" in host.log_text()

    wait_for(started, "the local host to start", timeout=60)
    return host


def wait_for(condition: Callable[[], bool], what: str, timeout: float, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)

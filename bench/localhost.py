"""The local Functions host (`python -m devhost`) running the real app as a separate process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.environment import IDLE_RETENTION_SCHEDULE
from devhost.azurite import REPO_ROOT, free_port

FUNCTION_KEY = "bench-function-key"
START_TIMEOUT = 60.0


@dataclass
class LocalHost:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> LocalHost:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_local_host(connection_string: str, directory: Path, outbox: Path) -> LocalHost:
    """Start the host on a free port with its own settings file, and wait for `Host started`."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = directory / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {}}), encoding="utf-8")
    log = directory / "host.log"
    env = {
        **os.environ,
        "AzureWebJobsStorage": connection_string,
        "LOCAL_FUNCTION_KEY": FUNCTION_KEY,
        "OUTBOX_DIR": str(outbox),
        "RETENTION_SCHEDULE": IDLE_RETENTION_SCHEDULE,
    }
    env.pop("ACS_CONNECTION_STRING", None)
    port = free_port()
    command = [sys.executable, "-m", "devhost", "--app-dir", str(REPO_ROOT), "--port", str(port)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--settings", str(settings)], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=log_file
        )
    host = LocalHost(process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while "Host started" not in log.read_text(encoding="utf-8", errors="replace"):
        if process.poll() is not None:
            raise RuntimeError(f"the local host exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            host.stop()
            raise TimeoutError(f"the local host did not start within {START_TIMEOUT} s")
        time.sleep(0.05)
    return host

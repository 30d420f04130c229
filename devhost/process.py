"""Run the local host as a child process and wait until it serves: for the tests, benchmarks and `run-local`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devhost.azurite import REPO_ROOT, free_port

READY_LINE = "Host started on"


@dataclass
class LocalHostProcess:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the local host exited with {self.process.returncode}:\n{self.log_text()}")

    def stop(self, timeout: float = 15.0) -> int:
        """Ctrl-C, as a person would: in-flight invocations finish first."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def __enter__(self) -> LocalHostProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def start_local_host(
    log_dir: Path,
    environment: Mapping[str, str],
    *,
    app_dir: Path = REPO_ROOT,
    port: int | None = None,
    settings: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> LocalHostProcess:
    """Start `python -m devhost` on `app_dir` with exactly `environment`; its output goes to `log_dir/host.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    # An explicit settings file, so a developer's local.settings.json never leaks into a test.
    settings_file = log_dir / "local.settings.json"
    settings_file.write_text(json.dumps({"IsEncrypted": False, "Values": dict(settings or {})}), encoding="utf-8")
    command = [sys.executable, "-m", "devhost", "--app-dir", str(app_dir), "--port", str(port)]
    log = log_dir / "host.log"
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*command, "--settings", str(settings_file)],
            cwd=REPO_ROOT,
            env=dict(environment),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    host = LocalHostProcess(process, port, log)
    deadline = time.monotonic() + timeout
    while READY_LINE not in host.log_text():
        host.check_alive()
        if time.monotonic() > deadline:
            host.stop()
            raise TimeoutError(f"the local host did not start within {timeout} s:\n{host.log_text()}")
        time.sleep(0.1)
    return host

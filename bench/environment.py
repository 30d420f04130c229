"""What every figure runs against: its own Azurite (in memory, free ports), settings, and the production wiring."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from bench.counting import RequestTally
from devhost.azurite import REPO_ROOT, AzuriteProcess, start_azurite
from shared.bootstrap import Dependencies, build
from shared.domain.clock import Clock, FixedClock
from shared.email import OutboxEmailSender
from shared.settings import Settings

PORTAL = "https://portal.bench.example"
SENDER = "billing@bench.pastdue.example"
# Far from any run of the benchmark, so the local host's timer never fires while it is measured.
IDLE_RETENTION_SCHEDULE = "0 0 0 1 1 *"


@dataclass
class Workbench:
    """One Azurite and a scratch folder; every figure gets its own, so no figure sees another's due entries."""

    name: str
    azurite: AzuriteProcess
    directory: Path
    accounts: int = 0  # account partitions written so far (T of the retention figures)
    notes: list[str] = field(default_factory=list)

    @property
    def connection_string(self) -> str:
        return self.azurite.connection_string

    def deps(self, *, clock: Clock, tally: RequestTally | None = None, **settings: Any) -> Dependencies:
        return production_deps(self.connection_string, self.directory / "outbox", clock=clock, tally=tally, **settings)

    def eml_count(self, outbox: Path | None = None) -> int:
        folder = outbox or self.directory / "outbox"
        return sum(1 for _ in folder.glob("*.eml")) if folder.exists() else 0


def bench_settings(connection_string: str, outbox_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "storage_connection_string": SecretStr(connection_string),
        "outbox_dir": outbox_dir,
        "portal_base_url": PORTAL,
        "acs_sender_address": SENDER,
        "retention_time_budget_seconds": 1700,
    }
    values.update(overrides)
    return Settings(**values)


def production_deps(
    connection_string: str, outbox_dir: Path, *, clock: Clock, tally: RequestTally | None = None, **settings: Any
) -> Dependencies:
    """The production wiring (`shared.bootstrap.build`) with a fixed clock, a request tally and the .eml outbox."""
    app_settings = bench_settings(connection_string, outbox_dir, **settings)
    email = OutboxEmailSender(app_settings.outbox_dir, SENDER, clock=clock.now)
    return build(app_settings, clock=clock, request_hook=tally, email=email)


@contextmanager
def workbench(name: str) -> Iterator[Workbench]:
    directory = Path(tempfile.mkdtemp(prefix=f"pastdue-bench-{name}-"))
    azurite = start_azurite()
    try:
        yield Workbench(name, azurite, directory)
    finally:
        azurite.stop()
        shutil.rmtree(directory, ignore_errors=True)


def fixed_clock(at: datetime) -> FixedClock:
    return FixedClock(at)


def git_commit() -> dict[str, Any]:
    """The commit measured, and whether the tree had uncommitted changes (read-only git commands)."""
    try:
        commit = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": dirty}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "node": _node_version(),
        "azurite": _azurite_version(),
        "load_average_at_start": load_average(),
    }
    return info


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure, so it is recorded."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=10)
    return result.stdout.strip()


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return platform.processor() or None


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def _node_version() -> str | None:
    try:
        return (
            subprocess.run(
                ["node", "--version"], capture_output=True, text=True, timeout=10, check=False
            ).stdout.strip()
            or None
        )
    except OSError:
        return None


def _azurite_version() -> str | None:
    package = REPO_ROOT / "node_modules" / "azurite" / "package.json"
    try:
        import json

        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None

"""The fault suite's counts, merged into bench/results/faults-latest.json (one section per test) for the README.

Tests may run in several xdist workers at once, so every update holds an exclusive lock on a sibling lock file.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "faults-latest.json"
# Outside the repository, so that the lock never shows up as a file to commit.
_LOCK = Path(tempfile.gettempdir()) / "pastdue-faults-latest.lock"


@contextmanager
def _locked() -> Iterator[None]:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read() -> dict[str, Any]:
    if not RESULTS.exists():
        return {}
    try:
        document: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return document


def publish(section: str, counts: dict[str, Any]) -> None:
    """Record one test's counts under `section`, with the time and the commit they were measured on."""
    with _locked():
        document = read()
        document.setdefault("sections", {})[section] = {"recorded_at": datetime.now(UTC).isoformat(), **counts}
        document["commit"] = _commit()
        RESULTS.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def recorded_since(moment: datetime) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = read().get("sections", {})
    return {
        name: counts
        for name, counts in sections.items()
        if datetime.fromisoformat(str(counts.get("recorded_at", "1970-01-01T00:00:00+00:00"))) >= moment
    }


def _commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=RESULTS.parents[2],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    return result.stdout.strip() or None

"""The fault suite's counts, merged into bench/results/local/faults-latest.json (one section per test).

That folder is ignored by git: a test run never rewrites a tracked file. `.venv/bin/python -m bench publish-faults`
copies the counts to the tracked bench/results/faults-latest.json that the README and docs quote.
Tests may run in several xdist workers at once, so every update holds an exclusive lock on a sibling lock file.
"""

from __future__ import annotations

import fcntl
import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.environment import git_commit
from bench.faults import LOCAL_FAULTS, read_counts

RESULTS = LOCAL_FAULTS
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


def publish(section: str, counts: dict[str, Any]) -> None:
    """Record one test's counts under `section`, with the time and the commit they were measured on."""
    measured_on = git_commit()
    with _locked():
        document = read_counts(RESULTS)
        document.setdefault("sections", {})[section] = {
            "recorded_at": datetime.now(UTC).isoformat(),
            "commit": measured_on["commit"],
            "dirty": measured_on["dirty"],
            **counts,
        }
        RESULTS.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def recorded_since(moment: datetime) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = read_counts(RESULTS).get("sections", {})
    return {
        name: counts
        for name, counts in sections.items()
        if datetime.fromisoformat(str(counts.get("recorded_at", "1970-01-01T00:00:00+00:00"))) >= moment
    }

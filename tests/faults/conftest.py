from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.faults.published import RESULTS, recorded_since

_session_started = datetime.now(UTC)
_NOT_SHOWN = {"recorded_at", "commit", "dirty"}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the counts the fault suite measured in this session (workers write them to the local results)."""
    recorded = recorded_since(_session_started)
    if not recorded:
        return
    terminalreporter.section("fault suite counts")
    for section, counts in sorted(recorded.items()):
        shown = {key: value for key, value in counts.items() if key not in _NOT_SHOWN}
        terminalreporter.write_line(f"{section}: {json.dumps(shown, sort_keys=True)}")
    terminalreporter.write_line(
        f"written to {RESULTS.relative_to(RESULTS.parents[3])} (not tracked); "
        "publish them with `.venv/bin/python -m bench publish-faults`"
    )

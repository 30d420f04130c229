"""`python -m cli backlog` against real Azurite: what is due and waiting, by age, set aside, and the latest lag."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.__main__ import main
from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies, dependencies
from shared.services.ports import ShardProgress
from tests.support.retention import clear_due_index
from tests.support.work_queue import clear_work_queues

pytestmark = pytest.mark.azurite


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dependencies]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("TEST_CLOCK_ENABLED", raising=False)
    dependencies.cache_clear()
    built = dependencies()
    clear_due_index(built)
    clear_work_queues(azurite.connection_string)
    yield built
    clear_due_index(built)
    dependencies.cache_clear()


def test_the_backlog_counts_what_is_due_by_age_and_shows_the_oldest_and_the_latest_lag(
    deps: Dependencies, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    recent = deps.due.schedule("acc-recent", now - timedelta(minutes=5))
    old = deps.due.schedule("acc-old", now - timedelta(days=3))
    deps.due.schedule("acc-later", now + timedelta(days=3))
    deps.due.set_aside([old], "rejection-42")
    deps.due.record_progress(
        ShardProgress(shard=2, reviewed_at=now, accounts=20, max_lag_seconds=930.0, mean_lag_seconds=400.0)
    )

    assert main(["backlog", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)

    assert (figures["entriesDue"], figures["accountsDue"], figures["setAside"]) == (2, 2, 1)
    assert figures["oldestDueAt"] == old.due_at.isoformat()
    assert figures["byAge"] == {"under 15 min": 1, "15 min - 1 h": 0, "1 h - 24 h": 0, "over 24 h": 1}
    assert figures["latestReviews"] == [
        {"shard": 2, "reviewedAt": now.isoformat(), "accounts": 20, "maxLagSeconds": 930.0, "meanLagSeconds": 400.0}
    ]
    assert figures["queued"] == {"retention-work": 0, "retention-work-poison": 0}

    assert main(["backlog"]) == 0
    text = capsys.readouterr().out
    assert "2 due entries for 2 account(s)" in text
    assert f"oldest due {old.due_at:%Y-%m-%d %H:%M:%S} UTC (3.0 d ago)" in text
    assert "1 set aside after failing every attempt" in text
    assert "due-02" in text
    assert "max lag 16 min" in text
    assert recent.account_id not in text  # counts and shards, never a list of accounts

"""`python -m cli clock …` against real Azurite: the test clock's commands, and `retention` beside it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.__main__ import main
from devhost.azurite import AzuriteProcess
from shared.storage.clock_offset import TableClockOffsetStore
from shared.storage.tables import TableStorage

pytestmark = pytest.mark.azurite

MOMENT = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)
STAMP = re.compile(r"test clock  (\S+)")


@pytest.fixture
def offsets(
    azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TableClockOffsetStore]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("TEST_CLOCK_ENABLED", raising=False)
    storage = TableStorage(azurite.connection_string)
    storage.ensure_tables()
    store = TableClockOffsetStore(storage)
    store.clear()
    yield store
    store.clear()


def clock_reading(output: str) -> datetime:
    match = STAMP.search(output)
    assert match is not None, output
    return datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))


def test_set_makes_the_clock_read_the_moment_and_show_reads_it_back(
    offsets: TableClockOffsetStore, capsys: pytest.CaptureFixture[str]
) -> None:
    before = datetime.now(UTC)
    assert main(["clock", "set", "2031-03-01T09:00:00Z"]) == 0
    after = datetime.now(UTC)

    assert clock_reading(capsys.readouterr().out) == MOMENT
    assert MOMENT - after <= offsets.offset() <= MOMENT - before
    assert main(["clock", "show"]) == 0
    shown = clock_reading(capsys.readouterr().out)
    assert MOMENT <= shown <= MOMENT + (datetime.now(UTC) - before) + timedelta(seconds=1)


def test_advance_adds_days_hours_or_minutes_and_reset_removes_the_offset(
    offsets: TableClockOffsetStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["clock", "advance", "31d"]) == 0
    assert main(["clock", "advance", "12h"]) == 0
    assert main(["clock", "advance", "90m"]) == 0
    assert "real time + 31d 13h 30m 0s" in capsys.readouterr().out.splitlines()[-3]
    assert offsets.offset() == timedelta(days=31, hours=13, minutes=30)

    assert main(["clock", "reset"]) == 0

    assert "(real time, no offset)" in capsys.readouterr().out
    assert offsets.offset() == timedelta(0)


@pytest.mark.parametrize(
    "argv", [["advance", "31"], ["advance", "0d"], ["advance", "-1d"], ["advance", "2w"], ["set", "next tuesday"]]
)
def test_a_malformed_duration_or_moment_is_refused_and_changes_nothing(
    offsets: TableClockOffsetStore, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["clock", *argv])

    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err
    assert offsets.offset() == timedelta(0)


def test_retention_at_a_date_ignores_the_test_clock_and_without_one_runs_on_it(
    offsets: TableClockOffsetStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEST_CLOCK_ENABLED", "true")
    main(["clock", "set", "2031-03-01T09:00:00Z"])
    capsys.readouterr()

    assert main(["retention", "--dry-run", "--at", "2027-02-03"]) == 0
    assert "Retention at 2027-02-03T23:59:59Z (dry run" in capsys.readouterr().out

    assert main(["retention", "--dry-run"]) == 0
    ran_at = re.search(r"Retention at (\S+) ", capsys.readouterr().out)
    assert ran_at is not None
    moment = datetime.fromisoformat(ran_at.group(1).replace("Z", "+00:00"))
    assert MOMENT <= moment <= MOMENT + timedelta(minutes=1)

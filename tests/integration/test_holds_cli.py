"""`python -m cli hold|release` end to end against Azurite, on real time, read back through `show-account`."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli.__main__ import main
from cli.holds import operator
from devhost.azurite import AzuriteProcess
from shared.bootstrap import dependencies
from shared.domain.audit import HoldAction
from shared.domain.model import Subscription
from tests.support.retention import make_world, new_account_id, seed_past_due_account

pytestmark = pytest.mark.azurite


@pytest.fixture
def account_id(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path))
    dependencies.cache_clear()
    world = make_world(azurite.connection_string, tmp_path)
    created = new_account_id()
    seed_past_due_account(world, created, past_due_since=datetime.now(UTC) - timedelta(days=3))
    yield created
    dependencies.cache_clear()


def show(account_id: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    capsys.readouterr()
    assert main(["show-account", account_id]) == 0
    shown: dict[str, object] = json.loads(capsys.readouterr().out)
    return shown


def test_hold_then_release_is_shown_audited_and_moves_the_deadline_by_the_time_held(
    account_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)

    assert main(["hold", account_id, "--reason", "Dispute DX-17", "--until", until.isoformat()]) == 0
    assert f"account {account_id} held: since " in capsys.readouterr().out
    held = show(account_id, capsys)
    release_code = main(["release", account_id])
    released_output = capsys.readouterr().out
    after = show(account_id, capsys)

    account = held["account"]
    assert isinstance(account, dict)
    assert account["hold"]["reason"] == "Dispute DX-17"
    assert account["hold"]["set_by"] == operator() == f"cli:{getpass.getuser()}"
    assert datetime.fromisoformat(account["hold"]["until"]) == until
    assert release_code == 0
    assert f"account {account_id} released; deadlines moved later: sub-1 +" in released_output
    after_account = after["account"]
    assert isinstance(after_account, dict)
    assert after_account["hold"] is None
    records = dependencies().audit.holds(account_id)
    assert [r.action for r in records] == [HoldAction.SET, HoldAction.RELEASED]
    assert [r["action"] for r in after["holdHistory"]] == ["set", "released"]  # type: ignore[index, union-attr]
    subscription = dependencies().accounts.load(account_id).get(Subscription, "sub-1")
    assert subscription is not None
    assert subscription.deadline_shift == records[1].at - records[0].since > timedelta(0)


def test_releasing_an_account_not_held_says_so(account_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["release", account_id]) == 0
    assert capsys.readouterr().out.strip() == f"account {account_id} is not held: nothing released"
    assert dependencies().audit.holds(account_id) == []


def test_an_end_in_the_past_is_refused_naming_until(account_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hold", account_id, "--reason", "Dispute", "--until", "2020-01-01T00:00:00Z"]) == 2
    assert capsys.readouterr().out.strip() == "error: --until: until must be in the future"
    assert main(["hold", "acc-does-not-exist", "--reason", "Dispute"]) == 1

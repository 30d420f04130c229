"""`python -m cli retention`: time travel and dry runs for operators, against real Azurite."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cli.retention import parse_moment, register
from devhost.azurite import AzuriteProcess
from shared.domain.lifecycle import SubscriptionState
from tests.support.retention import World, make_world, new_account_id, seed_past_due_account

pytestmark = pytest.mark.azurite


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    created = make_world(azurite.connection_string, tmp_path)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(created.email.directory))
    monkeypatch.setenv("LIFECYCLE_QUEUE", created.settings.lifecycle_queue)
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    return created


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["retention", *argv])
    return int(args.handler(args))


def test_a_dry_run_at_a_date_lists_what_would_happen_and_changes_nothing(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    before = world.load(account_id)

    assert cli("--dry-run", "--at", "2027-02-03") == 0

    output = capsys.readouterr().out
    assert "Retention at 2027-02-03T23:59:59Z (dry run, nothing written)" in output
    assert f"{account_id} / sub-1: Disabled (subscription.disabled), data deleted on 2027-05-04" in output
    assert "superseded 3" in output
    after = world.load(account_id)
    assert (after.version, after.rows) == (before.version, before.rows)
    assert world.email.eml_files == []


def test_a_run_at_a_date_travels_there_and_does_it(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)

    assert cli("--at", "2027-01-30T02:00:00Z") == 0

    output = capsys.readouterr().out
    assert f"{account_id} / sub-1: Warned + final notice, disabled on 2027-02-03" in output
    assert "1 emails sent" in output
    assert world.subscription(account_id).state is SubscriptionState.WARNED
    assert len(world.email.eml_files) == 1
    (notice,) = world.notifications(account_id)
    assert notice.sent_at == parse_moment("2027-01-30T02:00:00Z")


def test_dates_mean_the_end_of_that_day_and_naive_times_are_utc() -> None:
    assert parse_moment("2027-02-03").isoformat() == "2027-02-03T23:59:59+00:00"
    assert parse_moment("2027-02-03T10:00").isoformat() == "2027-02-03T10:00:00+00:00"
    assert parse_moment("2027-02-03T12:00+02:00").isoformat() == "2027-02-03T10:00:00+00:00"
    with pytest.raises(argparse.ArgumentTypeError):
        parse_moment("next tuesday")

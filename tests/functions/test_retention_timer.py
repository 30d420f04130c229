"""The timer function called directly with a real `azure.functions.timer.TimerRequest`, wired by bootstrap."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.functions.timer import TimerRequest

from devhost.azurite import AzuriteProcess
from functions.retention_timer.handler import retention
from shared.bootstrap import dependencies
from shared.domain.outbox import NotificationStatus
from tests.support.retention import (
    ADMIN_EMAIL,
    SUBSCRIPTION_NAME,
    World,
    clear_due_index,
    make_world,
    new_account_id,
    seed_past_due_account,
)

pytestmark = pytest.mark.azurite


@pytest.fixture
def app_settings(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app settings a worker would have, pointing at the test's Azurite; the process cache is rebuilt."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "app-outbox"))
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    dependencies.cache_clear()
    yield
    dependencies.cache_clear()


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path, app_settings: None) -> World:
    return make_world(azurite.connection_string, tmp_path)


def test_the_timer_sends_the_reminder_that_fell_due_and_logs_counts_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    account_id = new_account_id()
    # The function runs on the system clock: this account's first reminder fell due yesterday.
    seed_past_due_account(world, account_id, past_due_since=datetime.now(UTC) - timedelta(days=8))
    caplog.set_level(logging.INFO)

    retention(TimerRequest(past_due=False))

    (reminder,) = world.notifications(account_id)
    assert reminder.template == "retention_reminder"
    assert reminder.status is NotificationStatus.SENT
    assert world.due_entries(account_id, datetime.now(UTC)) == []
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention run finished")]
    assert "'reminder': 1" in summary
    assert "'emails_sent': 1" in summary
    assert "'past_due': False" in summary
    assert not any("timer.past_due" in r.getMessage() for r in caplog.records)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert ADMIN_EMAIL not in logged
    assert SUBSCRIPTION_NAME not in logged


def test_a_late_timer_says_so_and_still_catches_up(world: World, caplog: pytest.LogCaptureFixture) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, past_due_since=datetime.now(UTC) - timedelta(days=40))
    caplog.set_level(logging.INFO)

    retention(TimerRequest(past_due=True))

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "timer.past_due" in r.getMessage()]
    assert len(warnings) == 1
    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention run finished")]
    assert "'past_due': True" in summary
    assert "'disabled': 1" in summary
    assert [n.template for n in world.notifications(account_id)] == ["retention_disabled"]


def test_nothing_due_is_a_quiet_run(world: World, caplog: pytest.LogCaptureFixture) -> None:
    clear_due_index(world.deps)
    caplog.set_level(logging.INFO)

    retention(TimerRequest(past_due=False))

    (summary,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retention run finished")]
    assert "'entries_due': 0" in summary
    assert "'accounts_reviewed': 0" in summary

"""The timer and the work-queue worker called as the host calls them (real TimerRequest and QueueMessage objects),
wired by bootstrap from the app settings, on Azurite: the timer only starts a pass, the worker does the reviews."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from devhost.azurite import AzuriteProcess
from functions.retention_timer.handler import retention
from functions.retention_worker.handler import max_dequeue_count, retention_worker
from shared.bootstrap import dependencies
from shared.domain.outbox import NotificationStatus
from shared.domain.retention_work import RETENTION_WORK_QUEUE, AccountReview, decode_work, encode_work
from shared.storage.layout import ACCOUNTS_TABLE, DUE_SHARDS, ROOT_ROW_KEY
from tests.support.lifecycle_events import events_of, lifecycle_messages
from tests.support.retention import (
    ADMIN_EMAIL,
    SUBSCRIPTION_NAME,
    World,
    clear_due_index,
    make_world,
    new_account_id,
    seed_past_due_account,
)
from tests.support.work_queue import clear_work_queues, drain, work_queue

pytestmark = pytest.mark.azurite


@pytest.fixture
def lifecycle_queue() -> str:
    return f"lifecycle-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def app_settings(
    azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lifecycle_queue: str
) -> Iterator[None]:
    """The app settings a worker would have, pointing at the test's Azurite; the process cache is rebuilt."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "app-outbox"))
    monkeypatch.setenv("LIFECYCLE_QUEUE", lifecycle_queue)
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    dependencies.cache_clear()
    clear_work_queues(azurite.connection_string)
    yield
    dependencies.cache_clear()


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path, app_settings: None) -> World:
    return make_world(azurite.connection_string, tmp_path)


def queued_kinds(connection_string: str) -> list[str]:
    queue = work_queue(connection_string)
    return [decode_work(bytes(m.content)).kind for m in queue.peek_messages(max_messages=32)]


def app_emails(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "app-outbox").glob("*.eml"))


def messages(caplog: pytest.LogCaptureFixture, prefix: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith(prefix)]


def test_the_timer_only_hands_out_one_sweep_per_shard_and_the_housekeeping(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, past_due_since=datetime.now(UTC) - timedelta(days=8))

    retention(TimerRequest(past_due=False))

    kinds = queued_kinds(world.connection_string)
    assert sorted(kinds) == sorted(["sweep"] * DUE_SHARDS + ["housekeeping"])
    assert world.notifications(account_id) == []  # reviewing is the workers' job


def test_the_worker_sends_the_reminder_that_fell_due_and_logs_counts_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    account_id = new_account_id()
    # The functions run on the system clock: this account's first reminder fell due yesterday.
    seed_past_due_account(world, account_id, past_due_since=datetime.now(UTC) - timedelta(days=8))
    caplog.set_level(logging.INFO)

    retention(TimerRequest(past_due=False))
    drained = drain(world.connection_string)

    assert (drained.count("sweep"), drained.count("review"), drained.count("housekeeping")) == (DUE_SHARDS, 1, 1)
    (reminder,) = world.notifications(account_id)
    assert reminder.template == "retention_reminder"
    assert reminder.status is NotificationStatus.SENT
    assert world.due_entries(account_id, datetime.now(UTC)) == []
    (review,) = messages(caplog, "retention review of 1 account(s)")
    assert "'accounts_reviewed': 1" in review
    assert "'emails_sent': 1" in review
    (started,) = messages(caplog, "retention pass started: ")
    assert f"'shards': {DUE_SHARDS}" in started
    assert "'past_due': False" in started
    assert not any("timer.past_due" in r.getMessage() for r in caplog.records)
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert ADMIN_EMAIL not in logged
    assert SUBSCRIPTION_NAME not in logged


def test_a_late_timer_says_so_and_the_pass_still_catches_up(
    world: World, caplog: pytest.LogCaptureFixture, lifecycle_queue: str
) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, past_due_since=datetime.now(UTC) - timedelta(days=40))
    caplog.set_level(logging.INFO)

    retention(TimerRequest(past_due=True))
    drain(world.connection_string)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "timer.past_due" in r.getMessage()]
    assert len(warnings) == 1
    assert "'past_due': True" in messages(caplog, "retention pass started: ")[0]
    assert [n.template for n in world.notifications(account_id)] == ["retention_disabled"]


def test_nothing_due_is_a_quiet_pass(world: World) -> None:
    clear_due_index(world.deps)

    retention(TimerRequest(past_due=False))
    drained = drain(world.connection_string)

    assert sorted(drained.kinds) == sorted(["sweep"] * DUE_SHARDS + ["housekeeping"])
    assert drained.failures == 0


def test_a_doubled_timer_occurrence_and_redelivered_work_items_change_nothing_twice(
    world: World, tmp_path: Path, lifecycle_queue: str
) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, past_due_since=datetime.now(UTC) - timedelta(days=40))
    queue = work_queue(world.connection_string)

    retention(TimerRequest(past_due=False))
    retention(TimerRequest(past_due=False))  # the same occurrence fired on two instances
    reviews: list[bytes] = []
    for message in drain_capturing_reviews(world, reviews):
        queue.send_message(message)  # every review item delivered a second time, after the first went through
    drain(world.connection_string)

    assert len(reviews) == 2  # one per firing: both sweeps handed the account out
    assert [n.template for n in world.notifications(account_id)] == ["retention_disabled"]
    assert len(app_emails(tmp_path)) == 1
    disabled = list(events_of(lifecycle_messages(world.connection_string, lifecycle_queue)))
    assert [e["type"] for e in disabled] == ["subscription.disabled"]


def drain_capturing_reviews(world: World, reviews: list[bytes]) -> list[bytes]:
    def capture(message: QueueMessage) -> None:
        body = message.get_body()
        if decode_work(body).kind == "review":
            reviews.append(body)
        retention_worker(message)

    drain(world.connection_string, capture)
    return list(reviews)


def test_a_review_that_fails_every_attempt_is_set_aside_visible_and_resubmittable_and_the_account_stays_due(
    world: World, tmp_path: Path
) -> None:
    broken, healthy = new_account_id(), new_account_id()
    for account_id in (broken, healthy):
        seed_past_due_account(world, account_id, past_due_since=datetime.now(UTC) - timedelta(days=8))
    accounts = world.deps.tables.table(ACCOUNTS_TABLE)
    intact = accounts.get_entity(broken, ROOT_ROW_KEY)
    accounts.upsert_entity({"PartitionKey": broken, "RowKey": ROOT_ROW_KEY, "Data": "{not json"})
    now = datetime.now(UTC)
    entries = [e for e in world.deps.due.due(now) if e.account_id in {broken, healthy}]
    review = AccountReview.model_validate(
        {
            "at": now,
            "entries": [{"accountId": e.account_id, "dueAt": e.due_at, "shard": e.shard} for e in entries],
        }
    )
    work_queue(world.connection_string).send_message(encode_work(review))

    drained = drain(world.connection_string)

    # The healthy account is done; the broken one went on alone, failed every attempt, and was set aside.
    assert drained.failures == max_dequeue_count() - 1
    assert drained.poisoned == []
    assert [n.template for n in world.notifications(healthy)] == ["retention_reminder"]
    (rejection,) = [r for r in dependencies().list_rejections() if broken in r.reason]
    assert rejection.queue == RETENTION_WORK_QUEUE
    assert rejection.reason.startswith(f"failed {max_dequeue_count()} attempts: AccountReviewFailedError")
    assert broken in rejection.reason
    assert [e.account_id for e in world.deps.due.due(now)] == [broken]
    backlog = world.deps.retention_backlog(now)
    assert (backlog.entries_due, backlog.set_aside) == (1, 1)

    # Later passes leave it alone until an operator re-submits it.
    retention(TimerRequest(past_due=False))
    assert drain(world.connection_string).count("review") == 0

    accounts.upsert_entity(intact)
    dependencies().resubmit_rejection(rejection.id, work_queue(world.connection_string).send_message)
    drain(world.connection_string)

    assert [n.template for n in world.notifications(broken)] == ["retention_reminder"]
    assert world.due_entries(broken, datetime.now(UTC)) == []


def test_a_message_that_is_no_work_item_is_set_aside_at_once(world: World) -> None:
    body = b'{"kind": "review", "at": "%s", "entries": []}' % datetime.now(UTC).isoformat().encode()
    work_queue(world.connection_string).send_message(body)

    drained = drain(world.connection_string)

    assert (drained.failures, drained.poisoned) == (0, [])
    (rejection,) = [r for r in dependencies().list_rejections() if r.raw_body == body]
    assert rejection.queue == RETENTION_WORK_QUEUE
    assert rejection.reason.startswith("not a retention work item: #/")

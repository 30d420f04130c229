"""Two local hosts on one Azurite, as two instances of a scaled-out app: the queue's messages are shared between
them with one effect each, and the timer runs on one of them at a time through the singleton lock."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.azurite import AzuriteProcess, start_azurite
from devhost.process import LocalHostProcess
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import ProcessedEvent, Subscription
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.storage.account_store import AccountStore
from shared.storage.tables import TableStorage
from tests.support.local_host import start_app, wait_for
from tests.support.payment_events import PORTAL, eml_files, payment_failed_document, read_eml

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

# Enough that one host cannot drain the queue before the other's next poll (at most 2 s apart, host.json).
ACCOUNTS = 100
EVERY_TWO_SECONDS = "*/2 * * * * *"
OCCURRENCES_WANTED = 4
_STAMP = r"^\[(?P<at>[0-9T:.-]+)Z\] "
TIMER_STARTED = re.compile(
    _STAMP + r"\[retention\] \[(?P<invocation>[^\]]+)\] Executing \(Reason='Timer fired for the occurrence at "
    r"(?P<occurrence>[^' ]+)",
    re.MULTILINE,
)
TIMER_FINISHED = re.compile(_STAMP + r"\[retention\] \[(?P<invocation>[^\]]+)\] Executed \(", re.MULTILINE)
TIMER_SKIPPED = re.compile(_STAMP + r"\[retention\] skipped the occurrence at (?P<occurrence>\S+?): ", re.MULTILINE)
EVENT_DONE = re.compile(r"\[payment_failed\] \[[^\]]+\] Executed \(Succeeded", re.MULTILINE)


@dataclass(frozen=True)
class TimerRun:
    host: int
    occurrence: datetime
    started: datetime
    finished: datetime


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def timer_runs(host: int, log: str) -> list[TimerRun]:
    """Every finished timer invocation in one host's log."""
    finished = {match["invocation"]: stamp(match["at"]) for match in TIMER_FINISHED.finditer(log)}
    return [
        TimerRun(host, datetime.fromisoformat(match["occurrence"]), stamp(match["at"]), finished[match["invocation"]])
        for match in TIMER_STARTED.finditer(log)
        if match["invocation"] in finished
    ]


def skipped_occurrences(log: str) -> set[datetime]:
    return {datetime.fromisoformat(match["occurrence"]) for match in TIMER_SKIPPED.finditer(log)}


@pytest.fixture(scope="module")
def own_azurite() -> Iterator[AzuriteProcess]:
    """An emulator of its own, so the timer and the queue see only this test's work."""
    azurite = start_azurite()
    yield azurite
    azurite.stop()


@pytest.fixture
def hosts(own_azurite: AzuriteProcess, tmp_path: Path) -> Iterator[list[LocalHostProcess]]:
    """Two instances of the app: one folder, so one host id and one set of locks; one outbox for both."""
    settings = {
        "RETENTION_SCHEDULE": EVERY_TWO_SECONDS,
        "PORTAL_BASE_URL": PORTAL,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    started: list[LocalHostProcess] = []
    try:
        for index in range(2):
            started.append(start_app(tmp_path / f"host-{index}", own_azurite.connection_string, **settings))
        yield started
    finally:
        for host in started:
            host.stop()


@pytest.fixture
def payment_queue(own_azurite: AzuriteProcess) -> QueueClient:
    queue = QueueClient.from_connection_string(
        own_azurite.connection_string, PAYMENT_EVENTS_QUEUE, message_encode_policy=TextBase64EncodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def test_two_hosts_share_the_queue_with_one_effect_per_event_and_run_the_timer_one_at_a_time(
    hosts: list[LocalHostProcess], own_azurite: AzuriteProcess, payment_queue: QueueClient, tmp_path: Path
) -> None:
    both_running = datetime.now(UTC)
    accounts = [f"acc-{uuid.uuid4().hex[:12]}" for _ in range(ACCOUNTS)]
    for account_id in accounts:
        document = payment_failed_document(account_id, event_id=f"evt-{account_id}")
        document["data"]["account"]["notificationEmail"] = f"{account_id}@contoso.example"
        payment_queue.send_message(json.dumps(document))
    store = AccountStore(TableStorage(own_azurite.connection_string))
    outbox = tmp_path / "outbox"

    def all_emailed() -> bool:
        return len(eml_files(outbox)) >= ACCOUNTS

    def timer_occurrences_since_start() -> int:
        runs = [run for index, host in enumerate(hosts) for run in timer_runs(index, host.log_text())]
        return sum(run.occurrence > both_running for run in runs)

    wait_for(all_emailed, f"{ACCOUNTS} emails", hosts[0], timeout=120)
    wait_for(
        lambda: payment_queue.get_queue_properties().approximate_message_count == 0,
        "the queue to be empty",
        hosts[1],
    )
    wait_for(
        lambda: timer_occurrences_since_start() >= OCCURRENCES_WANTED,
        f"{OCCURRENCES_WANTED} timer occurrences",
        hosts[0],
        timeout=60,
    )
    for host in hosts:
        host.stop()
    logs = [host.log_text() for host in hosts]

    # Every event had exactly one effect: its subscription past due, one processed marker, one email.
    for account_id in accounts:
        partition = store.load(account_id)
        subscription = partition.get(Subscription, "sub-a")
        assert subscription is not None
        assert subscription.state is SubscriptionState.PAST_DUE
        assert [row.event_id for row in partition.all(ProcessedEvent)] == [f"evt-{account_id}"]
    recipients = Counter(str(read_eml(path)["To"]) for path in eml_files(outbox))
    assert recipients == Counter({f"{account_id}@contoso.example": 1 for account_id in accounts})
    # ... and the hosts competed for the messages, each taking some, none taken twice.
    handled = [len(EVENT_DONE.findall(log)) for log in logs]
    assert sum(handled) == ACCOUNTS
    assert min(handled) > 0, handled

    # The timer ran each occurrence on at most one host, and never on both at once.
    runs = sorted((run for index, log in enumerate(logs) for run in timer_runs(index, log)), key=lambda r: r.started)
    occurrences = Counter(run.occurrence for run in runs)
    assert sum(run.occurrence > both_running for run in runs) >= OCCURRENCES_WANTED
    assert max(occurrences.values()) == 1, occurrences
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished <= later.started, (earlier, later)
    # Both tried each time: an occurrence one host ran is one the other skipped, for want of the lock.
    skipped = [skipped_occurrences(log) for log in logs]
    ran_here_skipped_there = [
        run for run in runs if run.occurrence > both_running and run.occurrence in skipped[1 - run.host]
    ]
    assert ran_here_skipped_there, (runs, skipped)

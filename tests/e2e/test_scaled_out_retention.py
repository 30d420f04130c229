"""Two local hosts on one Azurite run the retention pass as two instances of a scaled-out app: the timer (every
2 s, on one host at a time) hands the due accounts out on the work queue, both hosts' workers review them, and
each account gets exactly one reminder however many firings and sweeps saw it due."""

from __future__ import annotations

import itertools
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess, start_azurite
from devhost.process import LocalHostProcess
from shared.domain.outbox import NotificationStatus
from tests.e2e.test_scaled_out_hosts import EVERY_TWO_SECONDS, skipped_occurrences, timer_runs
from tests.support.local_host import start_app, wait_for
from tests.support.payment_events import PORTAL, eml_files, read_eml
from tests.support.retention import make_world, new_account_id, seed_past_due_account
from tests.support.work_queue import clear_work_queues

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

ACCOUNTS = 60
# Small batches, so the reviews are a dozen work items for the two hosts to compete for.
BATCH_SIZE = 5
OCCURRENCES_WANTED = 4
WORKER_DONE = re.compile(r"\[retention_worker\] \[[^\]]+\] Executed \(Succeeded", re.MULTILINE)
REVIEWED = re.compile(r"retention review of \d+ account\(s\): \{[^\n]*'accounts_reviewed': (?P<count>\d+)")


@pytest.fixture(scope="module")
def own_azurite() -> Iterator[AzuriteProcess]:
    """An emulator of its own, so the timer's passes see only this test's due accounts."""
    azurite = start_azurite()
    yield azurite
    azurite.stop()


def start_hosts(azurite: AzuriteProcess, tmp_path: Path, hosts: list[LocalHostProcess]) -> None:
    """Two instances of the app: one folder, so one host id and one set of locks; one outbox for both."""
    settings = {
        "RETENTION_SCHEDULE": EVERY_TWO_SECONDS,
        "RETENTION_BATCH_SIZE": str(BATCH_SIZE),
        "PORTAL_BASE_URL": PORTAL,
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    for index in range(2):
        hosts.append(start_app(tmp_path / f"host-{index}", azurite.connection_string, **settings))


def operation_id(account_id: str, notification_id: str) -> str:
    """The id an email is sent under: derived from its account and notification, so a repeat is recognisable."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"pastdue:{account_id}:{notification_id}"))


def test_two_hosts_review_every_due_account_once_sharing_the_work_while_the_timer_runs_on_one_at_a_time(
    own_azurite: AzuriteProcess, tmp_path: Path
) -> None:
    clear_work_queues(own_azurite.connection_string)
    world = make_world(own_azurite.connection_string, tmp_path / "seeding")
    # The hosts run on the system clock: these accounts' cards failed 8 days ago, so the 7-day reminder is due.
    failed_at = datetime.now(UTC) - timedelta(days=8)
    accounts = [new_account_id() for _ in range(ACCOUNTS)]
    for account_id in accounts:
        seed_past_due_account(world, account_id, past_due_since=failed_at)
    assert {entry.account_id for entry in world.deps.due.due(datetime.now(UTC))} == set(accounts)
    outbox = tmp_path / "outbox"

    hosts: list[LocalHostProcess] = []
    try:
        start_hosts(own_azurite, tmp_path, hosts)
        both_running = datetime.now(UTC)

        def reviewed() -> int:
            return sum(int(m["count"]) for host in hosts for m in REVIEWED.finditer(host.log_text()))

        def timer_occurrences_since_start() -> int:
            runs = [run for index, host in enumerate(hosts) for run in timer_runs(index, host.log_text())]
            return sum(run.occurrence > both_running for run in runs)

        wait_for(lambda: len(eml_files(outbox)) >= ACCOUNTS, f"{ACCOUNTS} reminders", hosts[0], timeout=120)
        wait_for(lambda: reviewed() >= ACCOUNTS, f"{ACCOUNTS} reviews in the logs", hosts[1], timeout=60)
        wait_for(
            lambda: timer_occurrences_since_start() >= OCCURRENCES_WANTED,
            f"{OCCURRENCES_WANTED} timer occurrences",
            hosts[0],
            timeout=60,
        )
    finally:
        for host in hosts:
            host.stop()
    logs = [host.log_text() for host in hosts]

    # Every account: one reminder notification, sent; one email under its id; nothing left due.
    expected_operations: list[str] = []
    for account_id in accounts:
        (reminder,) = world.notifications(account_id)
        assert reminder.template == "retention_reminder"
        assert reminder.status is NotificationStatus.SENT
        expected_operations.append(operation_id(account_id, reminder.id))
    sent = Counter(str(read_eml(path)["X-Pastdue-Operation-Id"]) for path in eml_files(outbox))
    assert sent == Counter(expected_operations)
    assert not {entry.account_id for entry in world.deps.due.due(datetime.now(UTC))} & set(accounts)
    # ... and both hosts' workers took some of the work items.
    invocations = [len(WORKER_DONE.findall(log)) for log in logs]
    assert min(invocations) > 0, invocations

    # The timer ran each occurrence on at most one host, and never on both at once.
    runs = sorted((run for index, log in enumerate(logs) for run in timer_runs(index, log)), key=lambda r: r.started)
    occurrences = Counter(run.occurrence for run in runs)
    assert sum(run.occurrence > both_running for run in runs) >= OCCURRENCES_WANTED
    assert max(occurrences.values()) == 1, occurrences
    for earlier, later in itertools.pairwise(runs):
        assert earlier.finished <= later.started, (earlier, later)
    skipped = [skipped_occurrences(log) for log in logs]
    assert any(run.occurrence in skipped[1 - run.host] for run in runs if run.occurrence > both_running), runs

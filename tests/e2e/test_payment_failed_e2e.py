"""The billing engine's side: put events on the real `payment-failed` queue and let the local host process them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.azurite import REPO_ROOT, AzuriteProcess, free_port
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Subscription
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.services.rejections import get_rejection
from shared.storage.account_store import AccountStore
from shared.storage.tables import TableStorage
from tests.support.payment_events import PORTAL, eml_files, payment_failed_document, read_eml

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@dataclass
class LocalHost:
    process: subprocess.Popen[bytes]
    log: Path
    outbox_dir: Path


def wait_for(condition: Callable[[], bool], what: str, host: LocalHost, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if host.process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}; host log:\n{host.log.read_text(encoding='utf-8')}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def local_host(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHost]:
    """`python -m devhost` on the real function_app.py, its storage pointed at the test's Azurite."""
    directory = tmp_path_factory.mktemp("payment-failed-e2e")
    settings = directory / "local.settings.json"
    settings.write_text(json.dumps({"IsEncrypted": False, "Values": {}}), encoding="utf-8")
    env = {
        **{k: v for k, v in os.environ.items() if k != "ACS_CONNECTION_STRING"},
        "AzureWebJobsStorage": azurite.connection_string,
        "OUTBOX_DIR": str(directory / "outbox"),
        "PORTAL_BASE_URL": PORTAL,
    }
    command = [sys.executable, "-m", "devhost", "--app-dir", str(REPO_ROOT), "--port", str(free_port())]
    log = directory / "host.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [*command, "--settings", str(settings)], cwd=REPO_ROOT, env=env, stdout=log_file, stderr=log_file
        )
    host = LocalHost(process, log, directory / "outbox")
    try:
        wait_for(lambda: "Host started" in log.read_text(encoding="utf-8"), "the host to start", host)
        yield host
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def payment_queue(azurite: AzuriteProcess) -> QueueClient:
    queue = QueueClient.from_connection_string(
        azurite.connection_string, PAYMENT_EVENTS_QUEUE, message_encode_policy=TextBase64EncodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


@pytest.fixture
def storage(azurite: AzuriteProcess) -> TableStorage:
    tables = TableStorage(azurite.connection_string)
    tables.ensure_tables()  # the host creates them too, on its first message; reads here may come first
    return tables


def test_a_payment_failed_event_on_the_queue_makes_the_subscription_past_due_and_writes_the_email(
    local_host: LocalHost, payment_queue: QueueClient, storage: TableStorage
) -> None:
    account_id = f"acc-{uuid.uuid4().hex[:12]}"
    store = AccountStore(storage)

    def state_of(subscription_id: str) -> SubscriptionState | None:
        subscription = store.load(account_id).get(Subscription, subscription_id)
        return subscription.state if subscription else None

    payment_queue.send_message(json.dumps(payment_failed_document(account_id, event_id=f"evt-{account_id}")))

    wait_for(lambda: state_of("sub-a") is SubscriptionState.PAST_DUE, "sub-a to become PastDue", local_host)
    assert state_of("sub-b") is SubscriptionState.ENABLED
    wait_for(lambda: len(eml_files(local_host.outbox_dir)) == 1, "the email in the outbox", local_host)
    message = read_eml(eml_files(local_host.outbox_dir)[0])
    assert message["To"] == "billing@contoso.example"
    assert message["Subject"] == "Uw betaling kon niet worden verwerkt: voldoe uw openstaande saldo"
    wait_for(
        lambda: payment_queue.get_queue_properties().approximate_message_count == 0,
        "the message to be deleted",
        local_host,
    )


def test_a_malformed_event_on_the_queue_is_set_aside_as_a_rejection_on_the_first_attempt(
    local_host: LocalHost, payment_queue: QueueClient, storage: TableStorage
) -> None:
    sent = payment_queue.send_message('{"specversion": "1.0", "id": "evt-e2e-broken", "type": "payment.failed"}')

    wait_for(lambda: get_rejection(storage, sent.id) is not None, "the rejection record", local_host)
    rejection = get_rejection(storage, sent.id)
    assert rejection is not None
    assert (rejection.event_id, rejection.dequeue_count) == ("evt-e2e-broken", 1)
    assert rejection.reason.startswith("source: Field required")
    assert "failed 5 times" not in local_host.log.read_text(encoding="utf-8")

"""The billing engine's side: put events on the real `payment-failed` queue and let the local host process them."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.azurite import AzuriteProcess
from devhost.process import LocalHostProcess
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Subscription
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.services.rejections import get_rejection
from shared.storage.account_store import AccountStore
from shared.storage.rejection_store import TableRejectionStore
from shared.storage.tables import TableStorage
from tests.support.local_host import outbox_of, start_app, wait_for
from tests.support.payment_events import PORTAL, eml_files, payment_failed_document, read_eml

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]


@pytest.fixture(scope="module")
def local_host(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    """`python -m devhost` on the real function_app.py, its storage pointed at the test's Azurite."""
    host = start_app(tmp_path_factory.mktemp("payment-failed-e2e"), azurite.connection_string, PORTAL_BASE_URL=PORTAL)
    yield host
    host.stop()


@pytest.fixture
def outbox_dir(local_host: LocalHostProcess) -> Path:
    return outbox_of(local_host)


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
    local_host: LocalHostProcess, payment_queue: QueueClient, storage: TableStorage, outbox_dir: Path
) -> None:
    account_id = f"acc-{uuid.uuid4().hex[:12]}"
    store = AccountStore(storage)

    def state_of(subscription_id: str) -> SubscriptionState | None:
        subscription = store.load(account_id).get(Subscription, subscription_id)
        return subscription.state if subscription else None

    payment_queue.send_message(json.dumps(payment_failed_document(account_id, event_id=f"evt-{account_id}")))

    wait_for(lambda: state_of("sub-a") is SubscriptionState.PAST_DUE, "sub-a to become PastDue", local_host)
    assert state_of("sub-b") is SubscriptionState.ENABLED
    wait_for(lambda: len(eml_files(outbox_dir)) == 1, "the email in the outbox", local_host)
    message = read_eml(eml_files(outbox_dir)[0])
    assert message["To"] == "billing@contoso.example"
    assert message["Subject"] == "Uw betaling kon niet worden verwerkt: voldoe uw openstaande saldo"
    wait_for(
        lambda: payment_queue.get_queue_properties().approximate_message_count == 0,
        "the message to be deleted",
        local_host,
    )


def test_a_malformed_event_on_the_queue_is_set_aside_as_a_rejection_on_the_first_attempt(
    local_host: LocalHostProcess, payment_queue: QueueClient, storage: TableStorage
) -> None:
    sent = payment_queue.send_message('{"specversion": "1.0", "id": "evt-e2e-broken", "type": "payment.failed"}')

    wait_for(
        lambda: get_rejection(TableRejectionStore(storage), sent.id) is not None, "the rejection record", local_host
    )
    rejection = get_rejection(TableRejectionStore(storage), sent.id)
    assert rejection is not None
    assert (rejection.event_id, rejection.dequeue_count) == ("evt-e2e-broken", 1)
    assert rejection.reason.startswith("source: Field required")
    assert "failed 5 times" not in local_host.log_text()

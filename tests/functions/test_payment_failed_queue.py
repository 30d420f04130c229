"""The queue function called directly with real `azure.functions.queue.QueueMessage` inputs, wired by bootstrap."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.functions.queue import QueueMessage

from devhost.azurite import AzuriteProcess, free_port
from functions.payment_failed_queue import handler
from functions.payment_failed_queue.handler import payment_failed
from shared.bootstrap import Dependencies, dependencies
from shared.domain.errors import TransientStorageError
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Subscription
from shared.storage.account_store import AccountStore
from shared.storage.due_index import TableDueIndex
from shared.storage.tables import TableStorage
from tests.support.payment_events import a_charge, body_of, eml_files, payment_failed_document

pytestmark = pytest.mark.azurite


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def app_settings(azurite: AzuriteProcess, outbox_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The app settings a worker would have, pointing at the test's Azurite; the process cache is rebuilt."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(outbox_dir))
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    dependencies.cache_clear()
    yield
    dependencies.cache_clear()


@pytest.fixture
def account_id() -> str:
    return f"acc-{uuid.uuid4().hex[:12]}"


def a_message(body: bytes, dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(id=str(uuid.uuid4()), body=body, dequeue_count=dequeue_count, pop_receipt="receipt")


def subscription_state(deps: Dependencies, account_id: str, subscription_id: str) -> SubscriptionState:
    found = deps.accounts.load(account_id).get(Subscription, subscription_id)
    assert found is not None
    return found.state


@pytest.mark.usefixtures("app_settings")
def test_a_payment_failed_message_marks_the_subscription_past_due_and_writes_one_email(
    account_id: str, outbox_dir: Path
) -> None:
    message = a_message(body_of(payment_failed_document(account_id)))

    assert payment_failed(message) is None

    deps = dependencies()
    assert subscription_state(deps, account_id, "sub-a") is SubscriptionState.PAST_DUE
    assert subscription_state(deps, account_id, "sub-b") is SubscriptionState.ENABLED
    assert len(eml_files(outbox_dir)) == 1


@pytest.mark.usefixtures("app_settings")
def test_the_same_message_delivered_again_writes_no_second_email(account_id: str, outbox_dir: Path) -> None:
    body = body_of(payment_failed_document(account_id))

    payment_failed(a_message(body, dequeue_count=1))
    payment_failed(a_message(body, dequeue_count=2))

    assert len(eml_files(outbox_dir)) == 1


@pytest.mark.usefixtures("app_settings")
def test_a_body_that_is_base64_of_the_event_is_accepted_as_with_message_encoding_none(account_id: str) -> None:
    body = base64.b64encode(body_of(payment_failed_document(account_id)))

    payment_failed(a_message(body))

    assert subscription_state(dependencies(), account_id, "sub-a") is SubscriptionState.PAST_DUE


@pytest.mark.usefixtures("app_settings")
def test_bad_input_returns_normally_so_the_host_deletes_it_and_leaves_a_rejection(account_id: str) -> None:
    document = payment_failed_document(account_id, charges=[a_charge("inv-1", "sub-a", amount="-5.00")])
    message = a_message(body_of(document), dequeue_count=1)

    assert payment_failed(message) is None

    deps = dependencies()
    rejection = deps.get_rejection(message.id)
    assert rejection is not None
    assert rejection.reason.startswith("data.charges[0].amount: String should match pattern")
    assert (rejection.event_id, rejection.dequeue_count, rejection.raw_body) == ("evt-0001", 1, message.get_body())
    assert not deps.accounts.load(account_id).exists


@pytest.mark.usefixtures("app_settings")
def test_a_payment_received_event_is_dispatched_to_the_invoice_service(account_id: str) -> None:
    # The invoice service refuses an account it does not know; that it answered at all proves the dispatch.
    message = a_message(
        body_of(
            {
                "specversion": "1.0",
                "id": f"evt-recv-{account_id}",
                "type": "payment.received",
                "source": "/bank-reconciliation",
                "data": {"accountId": account_id, "reference": "PD-123", "amount": "49.95", "currency": "EUR"},
            }
        )
    )

    payment_failed(message)

    rejection = dependencies().get_rejection(message.id)
    assert rejection is not None
    assert rejection.event_type == "payment.received"
    assert rejection.reason.startswith("UnknownAccountError:")


@pytest.mark.usefixtures("app_settings")
def test_storage_that_does_not_answer_raises_so_the_host_retries(
    azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch, account_id: str
) -> None:
    # GIVEN a warm worker whose storage account stops answering (a port nobody listens on; no SDK retries)
    warm = dependencies()
    unreachable = azurite.connection_string.replace(f":{azurite.table_port}/", f":{free_port()}/")
    storage = TableStorage(unreachable, retry_total=0)
    accounts, due = AccountStore(storage), TableDueIndex(storage)
    outage = dataclasses.replace(
        warm,
        storage=storage,
        accounts=accounts,
        due=due,
    )
    monkeypatch.setattr(handler, "dependencies", lambda: outage)

    # WHEN a valid event arrives THEN the function raises, so the host makes the message visible again
    with pytest.raises(TransientStorageError):
        payment_failed(a_message(body_of(payment_failed_document(account_id))))

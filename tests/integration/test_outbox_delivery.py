from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient, TextBase64DecodePolicy

from devhost.azurite import AzuriteProcess
from shared.adapters.lifecycle_queue import QueueLifecyclePublisher
from shared.domain.clock import FixedClock
from shared.domain.email import OutgoingEmail, SendOutcome
from shared.domain.model import Account
from shared.domain.outbox import LifecycleEvent, Notification, NotificationStatus
from shared.email import EmailRenderer, OutboxEmailSender
from shared.services.delivery import Outbox, deliver
from shared.services.ports import SentMessage
from shared.storage.account_store import AccountStore
from shared.storage.due_index import TableDueIndex
from shared.storage.layout import SENT_EMAILS_TABLE
from shared.storage.message_index import TableMessageIndex
from shared.storage.tables import TableStorage

NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)


class ScriptedSender:
    """Answers with scripted outcomes, then hands over to the real .eml outbox."""

    def __init__(self, real: OutboxEmailSender, outcomes: list[SendOutcome]) -> None:
        self.real = real
        self.outcomes = outcomes
        self.operation_ids: list[str] = []

    def send(self, email: OutgoingEmail) -> SendOutcome:
        self.operation_ids.append(email.operation_id)
        return self.outcomes.pop(0) if self.outcomes else self.real.send(email)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


def make_outbox(
    azurite: AzuriteProcess,
    store: AccountStore,
    due_index: TableDueIndex,
    sender: ScriptedSender,
    clock: FixedClock,
    queue_name: str,
) -> Outbox:
    storage = TableStorage(azurite.connection_string)
    storage.ensure_tables((SENT_EMAILS_TABLE,))
    return Outbox(
        store=store,
        due=due_index,
        email=sender,
        renderer=EmailRenderer(),
        events=QueueLifecyclePublisher(azurite.connection_string, queue_name),
        messages=TableMessageIndex(storage),
        clock=clock,
    )


def notification(notification_id: str, template: str = "_smoke") -> Notification:
    return Notification(
        id=notification_id,
        template=template,
        locale="en-US",
        to_address="billing@contoso.example",
        context={"name": "Ada", "note": "hello"},
        created_at=NOW,
        next_attempt_at=NOW,
    )


def seed(store: AccountStore, account_id: str, *rows: object) -> None:
    partition = store.load(account_id)
    partition.set_account(
        Account(
            id=account_id,
            admin_principal_id="u",
            notification_email="billing@contoso.example",
            locale="en-US",
            currency="EUR",
        )
    )
    partition.put(*rows)  # type: ignore[arg-type]
    store.commit(partition)


def test_a_throttled_email_stays_pending_is_put_on_the_due_index_and_is_sent_once_later(
    azurite: AzuriteProcess,
    store: AccountStore,
    due_index: TableDueIndex,
    account_id: str,
    tmp_path: Path,
    clock: FixedClock,
) -> None:
    seed(store, account_id, notification("n-1"))
    sender = ScriptedSender(OutboxEmailSender(tmp_path, "noreply@example.com"), [SendOutcome.retry("429", 120)])
    outbox = make_outbox(azurite, store, due_index, sender, clock, f"q{account_id.replace('-', '')}")

    first = deliver(outbox, account_id)

    pending = store.load(account_id).get(Notification, "n-1")
    assert pending is not None
    assert (first.retrying, pending.status, pending.attempts) == (["n-1"], NotificationStatus.PENDING, 1)
    assert pending.next_attempt_at == NOW + timedelta(seconds=120)
    assert [e.account_id for e in due_index.due(NOW + timedelta(seconds=120))].count(account_id) == 1
    assert deliver(outbox, account_id).sent == []  # not due yet

    clock.advance(timedelta(minutes=2))
    second = deliver(outbox, account_id)
    third = deliver(outbox, account_id)

    sent = store.load(account_id).get(Notification, "n-1")
    assert sent is not None
    assert (second.sent, third.sent, sent.status) == (["n-1"], [], NotificationStatus.SENT)
    assert len(set(sender.operation_ids)) == 1  # the retry carried the same operation id
    assert len(list(tmp_path.glob("*.eml"))) == 1
    assert sent.message_id is not None
    assert outbox.messages.find(sent.message_id) == SentMessage(sent.message_id, account_id, "n-1")


def test_an_email_that_cannot_be_rendered_is_set_aside_and_the_others_still_go(
    azurite: AzuriteProcess,
    store: AccountStore,
    due_index: TableDueIndex,
    account_id: str,
    tmp_path: Path,
    clock: FixedClock,
) -> None:
    seed(store, account_id, notification("broken", template="no_such_template"), notification("fine"))
    sender = ScriptedSender(OutboxEmailSender(tmp_path, "noreply@example.com"), [])
    outbox = make_outbox(azurite, store, due_index, sender, clock, f"q{account_id.replace('-', '')}")

    report = deliver(outbox, account_id)

    partition = store.load(account_id)
    broken = partition.get(Notification, "broken")
    assert broken is not None
    assert (report.failed, report.sent, broken.status) == (["broken"], ["fine"], NotificationStatus.FAILED)
    assert broken.last_error is not None
    assert broken.last_error.startswith("rendering")


def test_pending_lifecycle_events_are_published_base64_as_a_cloudevents_batch_and_then_removed(
    azurite: AzuriteProcess,
    store: AccountStore,
    due_index: TableDueIndex,
    account_id: str,
    tmp_path: Path,
    clock: FixedClock,
) -> None:
    queue_name = f"q{account_id.replace('-', '')}"
    event = LifecycleEvent(
        id="sub-a-disabled-1", type="subscription.disabled", subject="sub-a", time=NOW, data={"deletionDate": "x"}
    )
    seed(store, account_id, event)
    outbox = make_outbox(
        azurite, store, due_index, ScriptedSender(OutboxEmailSender(tmp_path, "n@example.com"), []), clock, queue_name
    )

    report = deliver(outbox, account_id)

    queue = QueueClient.from_connection_string(
        azurite.connection_string, queue_name, message_decode_policy=TextBase64DecodePolicy()
    )
    messages = [event for m in queue.receive_messages() for event in json.loads(m.content)]
    assert report.published == ["sub-a-disabled-1"]
    assert [(m["id"], m["type"], m["specversion"], m["subject"]) for m in messages] == [
        ("sub-a-disabled-1", "subscription.disabled", "1.0", "sub-a")
    ]
    assert store.load(account_id).pending_events == []

"""The Event Grid function called directly with real `func.EventGridEvent` and `func.CloudEvent` inputs."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

from devhost.azurite import AzuriteProcess, free_port
from functions.email_delivery_reports import handler
from functions.email_delivery_reports.handler import email_delivery_report
from functions.payment_failed_queue.handler import payment_failed
from shared.bootstrap import dependencies
from shared.domain.delivery_reports import EMAIL_DELIVERY_REPORT, UNDELIVERABLE_ALERT_ID
from shared.domain.errors import TransientStorageError
from shared.domain.model import Alert
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.payment_failure import notification_id
from shared.storage.message_index import TableMessageIndex
from shared.storage.tables import TableStorage
from tests.support.delivery_reports import cloud_event, eventgrid_event, report_data
from tests.support.payment_events import body_of, payment_failed_document

pytestmark = pytest.mark.azurite
ATTEMPT = datetime(2027, 1, 4, 10, 0, 42, tzinfo=UTC)


@pytest.fixture
def app_settings(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.setenv("LIFECYCLE_QUEUE", f"lifecycle-{uuid.uuid4().hex[:12]}")
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    dependencies.cache_clear()
    yield
    dependencies.cache_clear()


@pytest.fixture
def account_id() -> str:
    return f"acc-{uuid.uuid4().hex[:12]}"


def emailed(account_id: str) -> Notification:
    """A payment.failed through its own function: the email it sends, as recorded (with its message id)."""
    payment_failed(func.QueueMessage(body=body_of(payment_failed_document(account_id))))
    found = dependencies().accounts.load(account_id).get(Notification, notification_id("evt-0001"))
    assert found is not None
    assert found.message_id is not None
    return found


def as_eventgrid_event(document: dict[str, Any]) -> func.EventGridEvent:
    return func.EventGridEvent(
        id=document["id"],
        data=document["data"],
        topic=document["topic"],
        subject=document["subject"],
        event_type=document["eventType"],
        event_time=datetime.fromisoformat(document["eventTime"]),
        data_version=document["dataVersion"],
    )


def stored(account_id: str, notification: Notification) -> Notification:
    found = dependencies().accounts.load(account_id).get(Notification, notification.id)
    assert found is not None
    return found


@pytest.mark.usefixtures("app_settings")
def test_an_event_grid_schema_report_records_the_bounce_and_opens_the_address_alert(account_id: str) -> None:
    email = emailed(account_id)
    assert email.message_id is not None
    event = as_eventgrid_event(eventgrid_event(report_data(email.message_id, "Bounced", ATTEMPT, "550 5.1.1")))

    assert email_delivery_report(event) is None

    partition = dependencies().accounts.load(account_id)
    bounced = partition.get(Notification, email.id)
    alert = partition.get(Alert, UNDELIVERABLE_ALERT_ID)
    assert bounced is not None
    assert (bounced.status, bounced.status_detail) == (NotificationStatus.BOUNCED, "550 5.1.1")
    assert alert is not None
    assert (alert.is_open, alert.reason, alert.email_address) == (True, "bounced", email.to_address)


@pytest.mark.usefixtures("app_settings")
def test_a_cloudevents_schema_report_as_the_worker_decodes_it_records_the_delivery(account_id: str) -> None:
    email = emailed(account_id)
    assert email.message_id is not None
    document = cloud_event(report_data(email.message_id, "Delivered", ATTEMPT))
    # The worker's own converter: for a CloudEvents body it hands over a func.CloudEvent.
    event = EventGridEventInConverter.decode(Datum(body_of(document).decode(), "json"), trigger_metadata=None)
    assert isinstance(event, func.CloudEvent)

    email_delivery_report(event)  # type: ignore[arg-type]

    assert stored(account_id, email).status is NotificationStatus.DELIVERED


@pytest.mark.usefixtures("app_settings")
def test_the_same_event_delivered_twice_changes_nothing_the_second_time(account_id: str) -> None:
    email = emailed(account_id)
    assert email.message_id is not None
    event = as_eventgrid_event(eventgrid_event(report_data(email.message_id, "Delivered", ATTEMPT)))
    email_delivery_report(event)
    after_first = dependencies().accounts.load(account_id)

    email_delivery_report(event)

    again = dependencies().accounts.load(account_id)
    assert (again.version, again.rows) == (after_first.version, after_first.rows)


@pytest.mark.usefixtures("app_settings")
def test_reports_out_of_order_leave_the_latest_attempt(account_id: str) -> None:
    email = emailed(account_id)
    assert email.message_id is not None
    later = eventgrid_event(report_data(email.message_id, "Delivered", ATTEMPT + timedelta(minutes=5)))
    earlier = eventgrid_event(report_data(email.message_id, "Failed", ATTEMPT))

    email_delivery_report(as_eventgrid_event(later))
    email_delivery_report(as_eventgrid_event(earlier))

    recorded = stored(account_id, email)
    assert (recorded.status, recorded.delivery_attempt_at) == (
        NotificationStatus.DELIVERED,
        ATTEMPT + timedelta(minutes=5),
    )


@pytest.mark.usefixtures("app_settings")
def test_a_report_for_an_unknown_message_and_an_event_of_another_type_are_acknowledged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    unknown = eventgrid_event(report_data(str(uuid.uuid4()), "Delivered", ATTEMPT))
    other = eventgrid_event(report_data(str(uuid.uuid4()), "Delivered", ATTEMPT)) | {
        "eventType": "Microsoft.Communication.EmailEngagementTrackingReportReceived"
    }
    broken = eventgrid_event(report_data(str(uuid.uuid4()), "Delivered", ATTEMPT)) | {"data": {"status": "Delivered"}}

    for document in (unknown, other, broken):
        assert email_delivery_report(as_eventgrid_event(document)) is None

    assert unknown["data"]["messageId"] in caplog.text
    assert "messageId: Field required" in caplog.text
    assert EMAIL_DELIVERY_REPORT in caplog.text


@pytest.mark.usefixtures("app_settings")
def test_storage_that_does_not_answer_raises_so_event_grid_delivers_again(
    azurite: AzuriteProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    warm = dependencies()
    unreachable = azurite.connection_string.replace(f":{azurite.table_port}/", f":{free_port()}/")
    outage = dataclasses.replace(warm, messages=TableMessageIndex(TableStorage(unreachable, retry_total=0)))
    monkeypatch.setattr(handler, "dependencies", lambda: outage)

    with pytest.raises(TransientStorageError):
        email_delivery_report(as_eventgrid_event(eventgrid_event(report_data("m-1", "Delivered", ATTEMPT))))

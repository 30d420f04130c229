"""The functions emit a span per invocation and per use case, with ids only, and count what they did."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devhost.azurite import AzuriteProcess
from devhost.invoker import InvocationContext
from functions.email_delivery_reports import handler as delivery_handler
from functions.email_delivery_reports.handler import email_delivery_report
from functions.payment_failed_queue import handler
from functions.payment_failed_queue.handler import payment_failed
from shared.bootstrap import Dependencies, dependencies
from shared.domain.outbox import Notification
from shared.domain.payment_failure import notification_id
from shared.telemetry import ACCOUNT_ID, EVENT_ID, FUNCTION_NAME, INVOCATION_ID, Telemetry
from tests.support.delivery_reports import eventgrid_event, report_data
from tests.support.payment_events import body_of, payment_failed_document

pytestmark = pytest.mark.azurite


@dataclasses.dataclass
class Recorded:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def counted(self, name: str) -> dict[tuple[tuple[str, Any], ...], int]:
        data = self.metrics.get_metrics_data()
        counts: dict[tuple[tuple[str, Any], ...], int] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            counts[tuple(sorted(point.attributes.items()))] = point.value
        return counts


@pytest.fixture
def recorded(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path / "outbox"))
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    dependencies.cache_clear()
    spans, metrics = InMemorySpanExporter(), InMemoryMetricReader()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    instruments = Telemetry(tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[metrics]))
    wired: Dependencies = dataclasses.replace(dependencies(), telemetry=instruments)
    monkeypatch.setattr(handler, "dependencies", lambda: wired)
    monkeypatch.setattr(delivery_handler, "dependencies", lambda: wired)
    yield Recorded(spans, metrics)
    dependencies.cache_clear()


def test_a_payment_failure_is_traced_by_invocation_and_use_case_with_ids_and_no_address(recorded: Recorded) -> None:
    account_id = f"acc-{uuid.uuid4().hex[:12]}"
    document = payment_failed_document(account_id)  # sub-a unpaid, sub-b on the same card
    message = QueueMessage(id=str(uuid.uuid4()), body=body_of(document), dequeue_count=1, pop_receipt="r")
    context = InvocationContext("inv-7f3a", "payment_failed", "")

    payment_failed(message, context)

    spans = {span.name: span for span in recorded.spans.get_finished_spans()}
    invocation, use_case = spans["payment_failed"], spans["apply_payment_failed"]
    assert dict(invocation.attributes or {}) == {
        FUNCTION_NAME: "payment_failed",
        INVOCATION_ID: "inv-7f3a",
        EVENT_ID: document["id"],
    }
    assert dict(use_case.attributes or {}) == {EVENT_ID: document["id"], ACCOUNT_ID: account_id}
    assert use_case.parent is not None
    assert use_case.parent.span_id == invocation.context.span_id
    address = document["data"]["account"]["notificationEmail"]
    assert all(address not in str(value) for span in spans.values() for value in (span.attributes or {}).values())
    assert recorded.counted("pastdue.subscription.transitions") == {(("pastdue.subscription.state", "PastDue"),): 1}
    assert recorded.counted("pastdue.emails") == {(("pastdue.email.status", "sent"),): 1}


def test_a_delivery_report_is_traced_with_ids_only_and_counted_by_its_status(recorded: Recorded) -> None:
    account_id = f"acc-{uuid.uuid4().hex[:12]}"
    document = payment_failed_document(account_id)
    payment_failed(QueueMessage(id=str(uuid.uuid4()), body=body_of(document), dequeue_count=1, pop_receipt="r"))
    sent = dependencies().accounts.load(account_id).get(Notification, notification_id(document["id"]))
    assert sent is not None
    assert sent.message_id is not None
    address = document["data"]["account"]["notificationEmail"]
    report = eventgrid_event(
        report_data(sent.message_id, "Bounced", datetime(2027, 1, 4, tzinfo=UTC), f"550 {address} unknown", address)
    )
    event = func.EventGridEvent(
        id=report["id"],
        data=report["data"],
        topic=report["topic"],
        subject=report["subject"],
        event_type=report["eventType"],
        event_time=None,
        data_version=report["dataVersion"],
    )

    email_delivery_report(event, InvocationContext("inv-9c1d", "email_delivery_report", ""))

    spans = {span.name: span for span in recorded.spans.get_finished_spans()}
    invocation, use_case = spans["email_delivery_report"], spans["apply_delivery_report"]
    assert dict(invocation.attributes or {}) == {
        FUNCTION_NAME: "email_delivery_report",
        INVOCATION_ID: "inv-9c1d",
        EVENT_ID: report["id"],
    }
    assert dict(use_case.attributes or {}) == {ACCOUNT_ID: account_id}
    assert all(address not in str(value) for span in spans.values() for value in (span.attributes or {}).values())
    assert recorded.counted("pastdue.emails") == {
        (("pastdue.email.status", "sent"),): 1,
        (("pastdue.email.status", "bounced"),): 1,
    }

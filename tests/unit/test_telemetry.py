"""Telemetry: spans and metrics through OpenTelemetry's in-memory exporters; Azure Monitor only with its setting."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic import SecretStr

from shared import telemetry
from shared.settings import Settings
from shared.telemetry import Telemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricsData


class Recorded:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = InMemoryMetricReader()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.telemetry = Telemetry(
            tracer_provider=tracer_provider, meter_provider=MeterProvider(metric_readers=[self.metrics])
        )

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data: MetricsData | None = self.metrics.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend((dict(point.attributes or {}), point) for point in metric.data.data_points)
        return found

    def unit(self, name: str) -> str:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return next(
            metric.unit
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
        )


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


def test_an_invocation_and_its_use_case_are_nested_spans_carrying_the_ids(recorded: Recorded) -> None:
    with recorded.telemetry.invocation("payment_failed_queue", invocation_id="inv-1", event_id="evt-1") as span:
        span.add({telemetry.ACCOUNT_ID: "acc-1001"})
        with recorded.telemetry.use_case("record_payment_failure", account_id="acc-1001"):
            pass

    use_case, invocation = recorded.spans.get_finished_spans()
    assert invocation.name == "payment_failed_queue"
    assert invocation.kind is trace.SpanKind.SERVER
    assert dict(invocation.attributes or {}) == {
        "faas.name": "payment_failed_queue",
        "faas.invocation_id": "inv-1",
        "cloudevents.event_id": "evt-1",
        "pastdue.account_id": "acc-1001",
    }
    assert use_case.name == "record_payment_failure"
    assert use_case.parent is not None
    assert use_case.parent.span_id == invocation.context.span_id
    assert dict(use_case.attributes or {}) == {"pastdue.account_id": "acc-1001"}


def test_attributes_outside_the_allowlist_and_values_that_are_not_ids_are_dropped(recorded: Recorded) -> None:
    with recorded.telemetry.invocation("settle_http", invocation_id="inv-2") as span:
        span.add(
            {
                "enduser.email": "ada@example.test",
                "pastdue.admin_name": "Ada Lovelace",
                telemetry.ACCOUNT_ID: "ada@example.test",
                telemetry.EVENT_ID: "Ada Lovelace",
            }
        )

    (finished,) = recorded.spans.get_finished_spans()
    assert dict(finished.attributes or {}) == {"faas.name": "settle_http", "faas.invocation_id": "inv-2"}


def test_a_failing_use_case_marks_its_span_with_the_error_type_but_not_the_message(recorded: Recorded) -> None:
    with pytest.raises(ValueError, match=r"ada@example\.test"), recorded.telemetry.use_case("settle"):
        raise ValueError("no account for ada@example.test")

    (finished,) = recorded.spans.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "ValueError"
    assert not finished.events
    assert "ada@example.test" not in repr(finished.to_json())


def test_counters_count_subscriptions_by_state_settlements_by_outcome_and_emails_by_status(recorded: Recorded) -> None:
    for state in ["PastDue", "PastDue", "Disabled"]:
        recorded.telemetry.subscription_entered(state)
    recorded.telemetry.settlement_finished("succeeded")
    recorded.telemetry.settlement_finished("declined")
    recorded.telemetry.email_reported("sent")
    recorded.telemetry.email_reported("ada@example.test")

    transitions = {
        attributes["pastdue.subscription.state"]: point.value
        for attributes, point in recorded.points("pastdue.subscription.transitions")
    }
    assert transitions == {"PastDue": 2, "Disabled": 1}
    settlements = {a["pastdue.settlement.outcome"]: p.value for a, p in recorded.points("pastdue.settlements")}
    assert settlements == {"succeeded": 1, "declined": 1}
    emails = {tuple(sorted(a.items())): p.value for a, p in recorded.points("pastdue.emails")}
    assert emails == {(("pastdue.email.status", "sent"),): 1, (): 1}  # the address was dropped, not recorded
    assert recorded.unit("pastdue.settlements") == "{settlement}"


def test_lifecycle_lag_is_a_histogram_in_seconds_and_backlog_a_gauge_read_at_collection(recorded: Recorded) -> None:
    backlog = {"due_accounts": 3, "pending_emails": 1}
    recorded.telemetry.observe_backlog(lambda: backlog)
    recorded.telemetry.lifecycle_lag(90.0)
    recorded.telemetry.lifecycle_lag(30.0)

    ((_, lag),) = recorded.points("pastdue.lifecycle.lag")
    assert (lag.count, lag.sum) == (2, 120.0)
    assert recorded.unit("pastdue.lifecycle.lag") == "s"
    gauge = {a["pastdue.backlog.kind"]: p.value for a, p in recorded.points("pastdue.backlog")}
    assert gauge == {"due_accounts": 3, "pending_emails": 1}


def test_without_a_connection_string_azure_monitor_is_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: calls.append(kw))

    assert telemetry.configure_telemetry(Settings()) is False
    assert calls == []
    assert not isinstance(trace.get_tracer_provider(), TracerProvider)  # still OpenTelemetry's no-op proxy


def test_with_a_connection_string_azure_monitor_is_configured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    # Replaced: a real call would start exporters (and statsbeat) that send to Microsoft.
    monkeypatch.setattr("azure.monitor.opentelemetry.configure_azure_monitor", lambda **kw: calls.append(kw))
    monkeypatch.setattr(telemetry, "_configured", False)
    settings = Settings(applicationinsights_connection_string=SecretStr("InstrumentationKey=00000000-test"))

    assert telemetry.configure_telemetry(settings) is True
    assert telemetry.configure_telemetry(settings) is True

    assert [call["connection_string"] for call in calls] == ["InstrumentationKey=00000000-test"]


def test_the_latest_backlog_of_each_kind_is_what_the_gauge_reports(recorded: Recorded) -> None:
    recorded.telemetry.record_backlog("due_entries", 40)
    recorded.telemetry.record_backlog("emails_retrying", 2)
    recorded.telemetry.record_backlog("due_entries", 7)

    gauge = {a["pastdue.backlog.kind"]: p.value for a, p in recorded.points("pastdue.backlog")}
    assert gauge == {"due_entries": 7, "emails_retrying": 2}

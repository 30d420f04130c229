"""Traces and metrics through OpenTelemetry, sent to Application Insights only when its connection string is set.

`configure_telemetry(settings)` calls `configure_azure_monitor()` once per process when
APPLICATIONINSIGHTS_CONNECTION_STRING is set; without it nothing is configured, so OpenTelemetry's API stays a no-op
and nothing is sent anywhere. Handlers and services use `Telemetry`: a span per invocation and per use case, and the
metric instruments below. Span attributes are ids only, from an allowlist (never an email address or a name); metric
attributes are short codes (a state, an outcome, a status). Anything else is dropped.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Status, StatusCode

if TYPE_CHECKING:
    from shared.settings import Settings

INSTRUMENTATION_NAME = "pastdue"

EVENT_ID = "cloudevents.event_id"
INVOCATION_ID = "faas.invocation_id"
FUNCTION_NAME = "faas.name"
ACCOUNT_ID = "pastdue.account_id"
SPAN_ATTRIBUTES = frozenset({EVENT_ID, INVOCATION_ID, FUNCTION_NAME, ACCOUNT_ID})

SUBSCRIPTION_STATE = "pastdue.subscription.state"
SETTLEMENT_OUTCOME = "pastdue.settlement.outcome"
EMAIL_STATUS = "pastdue.email.status"
BACKLOG_KIND = "pastdue.backlog.kind"
METRIC_ATTRIBUTES = frozenset({SUBSCRIPTION_STATE, SETTLEMENT_OUTCOME, EMAIL_STATUS, BACKLOG_KIND})

# Ids as this app makes them (acc-1001, evt_..., GUIDs): an '@' or a space can only be something else.
_ID_VALUE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
_CODE_VALUE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")

_configure_lock = threading.Lock()
_configured = False


def configure_telemetry(settings: Settings) -> bool:
    """Send traces, metrics and logs to Application Insights when its connection string is set; True if it is."""
    global _configured  # noqa: PLW0603 - one exporter pipeline per process, as the distro requires
    if settings.applicationinsights_connection_string is None:
        return False
    with _configure_lock:
        if not _configured:
            from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415 - only when sending

            # With APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD (the template) the exporter signs in
            # with the app's managed identity, so ingestion needs no instrumentation key secret. Logs: the host
            # forwards the worker's logs itself (host.json keeps the default telemetry mode), so the distro takes
            # only its own logger's records, or every log line would arrive twice.
            configure_azure_monitor(
                connection_string=settings.applicationinsights_connection_string.get_secret_value(),
                logger_name=INSTRUMENTATION_NAME,
                enable_live_metrics=False,
            )
            _configured = True
    return True


def span_attributes(attributes: Mapping[str, object]) -> dict[str, str]:
    """The allowed id attributes among `attributes`; others, and values that are not plain ids, are dropped."""
    return {
        key: value
        for key, value in attributes.items()
        if key in SPAN_ATTRIBUTES and isinstance(value, str) and _ID_VALUE.fullmatch(value)
    }


def metric_attributes(attributes: Mapping[str, object]) -> dict[str, str]:
    """The allowed metric attributes among `attributes`, each a short code; others are dropped."""
    return {
        key: value
        for key, value in attributes.items()
        if key in METRIC_ATTRIBUTES and isinstance(value, str) and _CODE_VALUE.fullmatch(value)
    }


class SpanIds:
    """The running span, to which only allowed ids can be added (an account id known once the input is decoded)."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def add(self, attributes: Mapping[str, object]) -> None:
        self._span.set_attributes(span_attributes(attributes))


class Telemetry:
    """Spans and metric instruments of the app; the providers are the global ones unless a test passes its own."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        self._meter = metrics.get_meter(INSTRUMENTATION_NAME, meter_provider=meter_provider)
        self._subscription_transitions = self._meter.create_counter(
            "pastdue.subscription.transitions",
            unit="{transition}",
            description="Subscriptions moved into a lifecycle state, by that state.",
        )
        self._settlements = self._meter.create_counter(
            "pastdue.settlements", unit="{settlement}", description="Settlement attempts, by outcome."
        )
        self._emails = self._meter.create_counter(
            "pastdue.emails", unit="{email}", description="Email sends and delivery reports, by status."
        )
        self._backlog: dict[str, int] = {}
        self._lifecycle_lag = self._meter.create_histogram(
            "pastdue.lifecycle.lag",
            unit="s",
            description="How late a due lifecycle step ran: the time from its due time to the run that took it.",
        )

    @contextmanager
    def invocation(self, function_name: str, **ids: str) -> Iterator[SpanIds]:
        """A span for one function invocation, named for the function."""
        with self._span(function_name, {FUNCTION_NAME: function_name, **_id_keys(ids)}, trace.SpanKind.SERVER) as span:
            yield span

    @contextmanager
    def use_case(self, name: str, **ids: str) -> Iterator[SpanIds]:
        """A span for one use case (a service call) inside an invocation."""
        with self._span(name, _id_keys(ids), trace.SpanKind.INTERNAL) as span:
            yield span

    def subscription_entered(self, state: str) -> None:
        self._subscription_transitions.add(1, metric_attributes({SUBSCRIPTION_STATE: state}))

    def settlement_finished(self, outcome: str) -> None:
        self._settlements.add(1, metric_attributes({SETTLEMENT_OUTCOME: outcome}))

    def email_reported(self, status: str) -> None:
        self._emails.add(1, metric_attributes({EMAIL_STATUS: status}))

    def lifecycle_lag(self, seconds: float) -> None:
        self._lifecycle_lag.record(max(0.0, seconds))

    def record_backlog(self, kind: str, count: int) -> None:
        """Remember the latest size of one kind of waiting work; the backlog gauge reports the latest of each."""
        if not self._backlog:
            self.observe_backlog(lambda: dict(self._backlog))
        self._backlog[kind] = count

    def observe_backlog(self, read: Callable[[], Mapping[str, int]]) -> None:
        """Report `read()` (work waiting, by kind: due accounts, pending emails) each time metrics are collected."""

        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            return [Observation(count, metric_attributes({BACKLOG_KIND: kind})) for kind, count in read().items()]

        self._meter.create_observable_gauge(
            "pastdue.backlog", callbacks=[observe], unit="{item}", description="Work waiting, by kind."
        )

    @contextmanager
    def _span(self, name: str, attributes: Mapping[str, object], kind: trace.SpanKind) -> Iterator[SpanIds]:
        with self._tracer.start_as_current_span(
            name,
            kind=kind,
            attributes=span_attributes(attributes),
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield SpanIds(span)
            except Exception as error:
                # The exception's type only: its message may quote input (an address, a name).
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                raise


_ID_KEYS = {"event_id": EVENT_ID, "invocation_id": INVOCATION_ID, "account_id": ACCOUNT_ID}


def _id_keys(ids: Mapping[str, str]) -> dict[str, str]:
    return {_ID_KEYS[name]: value for name, value in ids.items() if name in _ID_KEYS}

"""The local host's Event Grid webhook, called as the HTTP server calls it: keys, handshake, both schemas, failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest

from devhost.app_loader import EventGridFunction, index_functions
from devhost.eventgrid import EventGridEndpoint
from devhost.invoker import Invoker
from functions.email_delivery_reports import bp as email_delivery_reports
from tests.support.delivery_reports import cloud_event, eventgrid_event, report_data, validation_event

KEY = "local-key"
ATTEMPT = datetime(2027, 1, 4, 10, 0, 42, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.events: list[func.EventGridEvent | func.CloudEvent] = []

    def __call__(self, event: func.EventGridEvent) -> None:
        if event.get_json().get("status") == "Explode":
            raise RuntimeError("asked to fail")
        self.events.append(event)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def endpoint(recorder: Recorder) -> Iterator[EventGridEndpoint]:
    invoker = Invoker(".")
    spec = EventGridFunction(name="email_delivery_report", function=recorder, binding_name="event", takes_context=False)
    yield EventGridEndpoint([spec], invoker, KEY)
    invoker.close()


def post(
    endpoint: EventGridEndpoint,
    body: Any,
    kind: str = "Notification",
    query: str = f"functionName=email_delivery_report&code={KEY}",
) -> tuple[int, dict[str, str], bytes]:
    answer = endpoint.handle(
        "POST", "/runtime/webhooks/eventgrid", query, {"aeg-event-type": kind}, json.dumps(body).encode()
    )
    return answer.status, answer.headers, answer.body


def test_the_webhook_path_is_the_hosts_own() -> None:
    assert EventGridEndpoint.handles("/runtime/webhooks/eventgrid")
    assert EventGridEndpoint.handles("/runtime/webhooks/EventGrid/")
    assert not EventGridEndpoint.handles("/api/runtime/webhooks/eventgrid")


def test_the_subscription_handshake_is_answered_with_the_validation_code(endpoint: EventGridEndpoint) -> None:
    status, headers, body = post(
        endpoint, [validation_event("512d38b6-c7b8-40c8-89fe-f46f9e9622b6")], "SubscriptionValidation"
    )

    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_a_cloudevents_handshake_with_its_data_as_json_text_is_answered_too(endpoint: EventGridEndpoint) -> None:
    event = {
        "specversion": "1.0",
        "id": "v-1",
        "type": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "source": "/x",
        "data": json.dumps({"validationCode": "code-7"}),
    }

    status, _, body = post(endpoint, event, "SubscriptionValidation")

    assert (status, json.loads(body)) == (200, {"validationResponse": "code-7"})


def test_each_event_grid_schema_event_is_one_invocation_with_a_func_event_grid_event(
    endpoint: EventGridEndpoint, recorder: Recorder
) -> None:
    events = [eventgrid_event(report_data(f"m-{n}", "Delivered", ATTEMPT)) for n in range(3)]

    status, _, _ = post(endpoint, events)

    assert status == 202
    assert [type(e) for e in recorder.events] == [func.EventGridEvent] * 3
    assert [e.get_json()["messageId"] for e in recorder.events] == ["m-0", "m-1", "m-2"]
    first = recorder.events[0]
    assert isinstance(first, func.EventGridEvent)
    assert (first.id, first.event_type, first.event_time) == (events[0]["id"], events[0]["eventType"], ATTEMPT)


def test_a_cloudevents_batch_and_a_single_cloudevent_reach_the_function_as_func_cloud_event(
    endpoint: EventGridEndpoint, recorder: Recorder
) -> None:
    batch = [cloud_event(report_data("m-1", "Bounced", ATTEMPT)), cloud_event(report_data("m-2", "Delivered", ATTEMPT))]

    assert post(endpoint, batch)[0] == 202
    assert post(endpoint, cloud_event(report_data("m-3", "Delivered", ATTEMPT)))[0] == 202

    assert [type(e) for e in recorder.events] == [func.CloudEvent] * 3
    first = recorder.events[0]
    assert isinstance(first, func.CloudEvent)
    assert (first.type, first.get_json()["messageId"]) == (batch[0]["type"], "m-1")


def test_a_failed_invocation_makes_the_answer_500_so_event_grid_delivers_again(
    endpoint: EventGridEndpoint, recorder: Recorder
) -> None:
    events = [
        eventgrid_event(report_data("m-1", "Explode", ATTEMPT)),
        eventgrid_event(report_data("m-2", "Delivered", ATTEMPT)),
    ]

    status, _, body = post(endpoint, events)

    assert (status, body) == (500, b"1 of 2 invocations failed\n")
    assert [e.get_json()["messageId"] for e in recorder.events] == ["m-2"]


@pytest.mark.parametrize(
    ("query", "kind", "body", "status"),
    [
        ("functionName=email_delivery_report", "Notification", [], 401),
        ("functionName=email_delivery_report&code=wrong", "Notification", [], 401),
        (f"functionName=no_such_function&code={KEY}", "Notification", [], 404),
        (f"code={KEY}", "Notification", [], 404),
        (f"functionName=email_delivery_report&code={KEY}", "", [], 400),
        (f"functionName=email_delivery_report&code={KEY}", "Notification", [1, 2], 400),
        (f"functionName=email_delivery_report&code={KEY}", "SubscriptionValidation", [{"data": {}}], 400),
        (f"functionName=email_delivery_report&code={KEY}", "Unsubscribe", [], 202),
    ],
)
def test_requests_that_are_not_deliveries_get_the_hosts_answers(
    endpoint: EventGridEndpoint, recorder: Recorder, query: str, kind: str, body: Any, status: int
) -> None:
    assert post(endpoint, body, kind, query)[0] == status
    assert recorder.events == []


def test_a_body_that_is_not_json_is_400(endpoint: EventGridEndpoint) -> None:
    answer = endpoint.handle(
        "POST",
        "/runtime/webhooks/eventgrid",
        f"functionName=email_delivery_report&code={KEY}",
        {"aeg-event-type": "Notification"},
        b"{not json",
    )

    assert answer.status == 400


def test_the_app_loader_finds_the_apps_event_grid_function() -> None:
    # A FunctionApp indexes its functions once (a second get_functions() sees every name as a duplicate), so this
    # indexes its own app with the real blueprint instead of function_app's.
    app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
    app.register_functions(email_delivery_reports)

    specs = index_functions(app, {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})

    found = [spec for spec in specs if isinstance(spec, EventGridFunction)]
    assert [(spec.name, spec.binding_name, spec.takes_context) for spec in found] == [
        ("email_delivery_report", "event", True)
    ]

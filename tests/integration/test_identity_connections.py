"""Identity-based connections: the real SDK clients, built from identity settings, sign with the injected credential.

The credential is a static TokenCredential: no test asks the instance metadata endpoint or a login server for a
token. The storage clients talk to a loopback recorder, the email client to the ACS stand-in accepting that token.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from azure.core.credentials import AccessToken

from shared import connections
from shared.domain.email import OutgoingEmail, SendStatus
from shared.domain.outbox import LifecycleEvent
from shared.settings import Settings
from tests.support.acs_standin import AcsEmailStandin
from tests.support.storage_recorder import StorageRecorder

if TYPE_CHECKING:
    from collections.abc import Iterator

TOKEN = "static-test-token"  # a made-up bearer token for the loopback servers
STORAGE_SCOPE = "https://storage.azure.com/.default"
ACS_SCOPE = "https://communication.azure.com//.default"


class StaticCredential:
    """A TokenCredential that hands out one fixed token and remembers the scopes it was asked for."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Iterator[StorageRecorder]:
    with StorageRecorder() as running:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(running.ca_bundle_path))
        yield running


def identity_settings(recorder: StorageRecorder) -> Settings:
    return Settings.model_validate(
        {
            "AzureWebJobsStorage__tableServiceUri": recorder.endpoint,
            "AzureWebJobsStorage__queueServiceUri": recorder.endpoint,
        }
    )


def test_tables_are_reached_at_the_service_uri_with_a_bearer_token_from_the_injected_credential(
    recorder: StorageRecorder,
) -> None:
    settings = identity_settings(recorder)
    credential = StaticCredential()

    storage = connections.table_storage(connections.storage_access(settings), credential)
    storage.ensure_tables(("accounts",))

    (request,) = recorder.requests
    assert (request.method, request.path) == ("POST", "/recorded/Tables")
    assert request.authorization == f"Bearer {TOKEN}"
    assert json.loads(request.body) == {"TableName": "accounts"}
    assert set(credential.scopes) == {STORAGE_SCOPE}


def test_lifecycle_events_are_queued_at_the_service_uri_base64_with_a_bearer_token(recorder: StorageRecorder) -> None:
    settings = identity_settings(recorder)
    credential = StaticCredential()
    event = LifecycleEvent(
        id="evt-1",
        type="subscription.disabled",
        subject="sub-1",
        time=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
        data={"accountId": "acc-1"},
    )

    publisher = connections.lifecycle_publisher(connections.storage_access(settings), "lifecycle-events", credential)
    report = publisher.publish_batch([event])

    create, send = recorder.requests
    assert (create.method, create.path) == ("PUT", "/recorded/lifecycle-events")
    assert (send.method, send.path) == ("POST", "/recorded/lifecycle-events/messages")
    assert {create.authorization, send.authorization} == {f"Bearer {TOKEN}"}
    encoded = send.body.decode().split("<MessageText>")[1].split("</MessageText>")[0]
    assert [e["id"] for e in json.loads(base64.b64decode(encoded))] == ["evt-1"]
    assert report.published == ("evt-1",)
    assert set(credential.scopes) == {STORAGE_SCOPE}


def test_email_goes_to_the_acs_endpoint_signed_with_the_injected_credential(monkeypatch: pytest.MonkeyPatch) -> None:
    with AcsEmailStandin(bearer_token=TOKEN) as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.ca_bundle_path))
        settings = Settings.model_validate({"ACS_ENDPOINT": standin.endpoint, "ACS_SENDER_ADDRESS": "billing@x.test"})
        credential = StaticCredential()

        sender = connections.acs_email_sender(settings, credential)
        assert sender is not None
        outcome = sender.send(
            OutgoingEmail(
                operation_id="notification-0001",
                to_address="ada@example.test",
                to_name=None,
                subject="Your payment failed",
                plain_text="Hello",
                html="<p>Hello</p>",
            )
        )
        sender.close()

        assert outcome.status is SendStatus.SENT
        assert [received.operation_id for received in standin.delivered] == ["notification-0001"]
        assert standin.bearer_requests >= 2  # the send and at least one status poll
        assert standin.unauthorized_requests == 0
        assert set(credential.scopes) == {ACS_SCOPE}

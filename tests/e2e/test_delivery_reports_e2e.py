"""ACS's side: Event Grid posts delivery reports to the local host's webhook, in both schemas, after the handshake."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from devhost.azurite import AzuriteProcess
from devhost.process import LocalHostProcess
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.delivery_reports import UNDELIVERABLE_ALERT_ID
from shared.domain.model import Account, Alert
from shared.domain.outbox import Notification, NotificationStatus
from shared.settings import Settings
from tests.support.delivery_reports import cloud_event, eventgrid_event, report_data, validation_event
from tests.support.local_host import start_app

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

FUNCTION_KEY = "e2e-eventgrid-key"
NOW = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
ADDRESS = "billing@contoso.example"


@pytest.fixture(scope="module")
def local_host(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    host = start_app(
        tmp_path_factory.mktemp("delivery-reports-e2e"), azurite.connection_string, LOCAL_FUNCTION_KEY=FUNCTION_KEY
    )
    yield host
    host.stop()


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path) -> Dependencies:
    """The test's own view of the same storage, to send emails (recording their message ids) and read the result."""
    settings = Settings(storage_connection_string=SecretStr(azurite.connection_string), outbox_dir=tmp_path)
    return build(settings, clock=FixedClock(NOW))


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def webhook(host: LocalHostProcess, body: Any, kind: str, *, function: str = "email_delivery_report") -> Answer:
    request = urllib.request.Request(
        f"{host.base_url}/runtime/webhooks/eventgrid?functionName={function}&code={FUNCTION_KEY}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"aeg-event-type": kind, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read())


def sent_email(deps: Dependencies) -> tuple[str, str]:
    """A new account with one billing email, sent: (account id, the email's message id)."""
    account_id = f"acc-{uuid.uuid4().hex[:12]}"
    partition = deps.accounts.load(account_id)
    partition.set_account(
        Account(id=account_id, admin_principal_id="user-7", notification_email=ADDRESS, locale="en-US", currency="EUR")
    )
    partition.put(
        Notification(
            id="n-1",
            template="_smoke",
            locale="en-US",
            to_address=ADDRESS,
            context={"name": "Ada", "note": "hello"},
            created_at=NOW,
            next_attempt_at=NOW,
        )
    )
    deps.accounts.commit(partition)
    assert deps.deliver(account_id).sent == ["n-1"]
    email = deps.accounts.load(account_id).get(Notification, "n-1")
    assert email is not None
    assert email.message_id is not None
    return account_id, email.message_id


def notification_of(deps: Dependencies, account_id: str) -> Notification:
    found = deps.accounts.load(account_id).get(Notification, "n-1")
    assert found is not None
    return found


def test_the_subscription_handshake_is_answered_with_the_validation_code(local_host: LocalHostProcess) -> None:
    answer = webhook(local_host, [validation_event("512d38b6-c7b8-40c8-89fe-f46f9e9622b6")], "SubscriptionValidation")

    assert (answer.status, json.loads(answer.body)) == (
        200,
        {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
    )


def test_an_event_grid_schema_bounce_reaches_the_function_and_opens_the_address_alert(
    local_host: LocalHostProcess, deps: Dependencies
) -> None:
    account_id, message_id = sent_email(deps)
    report = report_data(message_id, "Bounced", NOW + timedelta(seconds=5), "550 5.1.1 mailbox unavailable")

    answer = webhook(local_host, [eventgrid_event(report)], "Notification")

    assert answer.status == 202
    email = notification_of(deps, account_id)
    assert (email.status, email.status_detail) == (NotificationStatus.BOUNCED, "550 5.1.1 mailbox unavailable")
    alert = deps.accounts.load(account_id).get(Alert, UNDELIVERABLE_ALERT_ID)
    assert alert is not None
    assert (alert.is_open, alert.email_address) == (True, ADDRESS)
    assert ADDRESS not in local_host.log_text()


def test_a_cloudevents_batch_is_applied_in_attempt_order_whatever_order_it_arrives_in(
    local_host: LocalHostProcess, deps: Dependencies
) -> None:
    account_id, message_id = sent_email(deps)
    later = cloud_event(report_data(message_id, "Delivered", NOW + timedelta(minutes=3), "250 OK"))
    earlier = cloud_event(report_data(message_id, "Quarantined", NOW + timedelta(minutes=1)))

    assert webhook(local_host, [later, earlier], "Notification").status == 202
    assert webhook(local_host, later, "Notification").status == 202  # one CloudEvent alone, delivered again

    email = notification_of(deps, account_id)
    assert (email.status, email.status_detail) == (NotificationStatus.DELIVERED, "250 OK")
    assert email.delivery_attempt_at == NOW + timedelta(minutes=3)


def test_a_report_for_an_unknown_message_is_acknowledged(local_host: LocalHostProcess) -> None:
    unknown = eventgrid_event(report_data(str(uuid.uuid4()), "Delivered", NOW))

    assert webhook(local_host, [unknown], "Notification").status == 202


def test_a_function_the_app_does_not_have_is_404(local_host: LocalHostProcess) -> None:
    answer = webhook(local_host, [], "Notification", function="no_such_function")

    assert answer.status == 404
    assert b"email_delivery_report" in answer.body

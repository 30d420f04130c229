"""The payment_failed email through the real ACS SDK against the loopback stand-in: throttling and server errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.payment_events import PaymentFailedEvent
from shared.domain.payment_failure import PaymentFailedOutcome, notification_id
from shared.email import AcsEmailSender
from shared.services.delivery import deliver
from tests.support.acs_standin import AcsEmailStandin, ErrorResponse, Throttled
from tests.support.payment_events import build_dependencies, payment_failed_document

pytestmark = pytest.mark.azurite

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)
SENDER = "DoNotReply@billing.contoso.example"


@pytest.fixture
def acs_standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[AcsEmailStandin]:
    with AcsEmailStandin() as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.ca_bundle_path))
        yield standin


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(
    azurite: AzuriteProcess, acs_standin: AcsEmailStandin, clock: FixedClock, tmp_path: Path
) -> Iterator[Dependencies]:
    sender = AcsEmailSender(acs_standin.connection_string, SENDER, poll_timeout_seconds=5)
    yield build_dependencies(azurite.connection_string, tmp_path / "outbox", clock, email_sender=sender)
    sender.close()


def stored_notification(deps: Dependencies, account_id: str, event_id: str) -> Notification:
    notification = deps.accounts.load(account_id).get(Notification, notification_id(event_id))
    assert notification is not None
    return notification


def test_a_throttled_send_stays_pending_until_retry_after_then_goes_out_once(
    deps: Dependencies, acs_standin: AcsEmailStandin, clock: FixedClock, account_id: str
) -> None:
    acs_standin.enqueue(Throttled(retry_after_seconds=600))
    event = PaymentFailedEvent.model_validate(payment_failed_document(account_id, event_id="evt-429"))

    result = deps.apply_payment_failed(event)

    throttled = stored_notification(deps, account_id, "evt-429")
    assert result.emails_sent == ()
    assert (throttled.status, throttled.attempts) == (NotificationStatus.PENDING, 1)
    assert throttled.last_error is not None
    assert "429" in throttled.last_error
    assert throttled.next_attempt_at == NOW + timedelta(seconds=600)
    assert acs_standin.delivered == []
    assert any(
        e.account_id == account_id and e.due_at == throttled.next_attempt_at
        for e in deps.due.due(NOW + timedelta(minutes=11))
    )

    # A redelivered event before Retry-After neither re-applies nor sends early.
    assert deps.apply_payment_failed(event).outcome is PaymentFailedOutcome.DUPLICATE
    assert acs_standin.delivered == []

    clock.advance(timedelta(minutes=10))
    report = deliver(deps.outbox, account_id)

    sent = stored_notification(deps, account_id, "evt-429")
    assert report.sent == [sent.id]
    assert (sent.status, sent.attempts, sent.sent_at) == (NotificationStatus.SENT, 2, NOW + timedelta(minutes=10))
    (delivered,) = acs_standin.delivered
    assert sent.message_id == delivered.operation_id
    assert delivered.message["recipients"]["to"] == [{"address": "billing@contoso.example"}]
    assert (
        delivered.message["content"]["subject"] == "Uw betaling kon niet worden verwerkt: voldoe uw openstaande saldo"
    )
    assert "€\u00a049,95" in delivered.message["content"]["plainText"]

    deliver(deps.outbox, account_id)
    deps.apply_payment_failed(event)
    assert len(acs_standin.delivered) == 1
    assert acs_standin.unauthorized_requests == 0


def test_a_server_error_is_retried_with_backoff_and_the_retry_sends_it(
    deps: Dependencies, acs_standin: AcsEmailStandin, clock: FixedClock, account_id: str
) -> None:
    acs_standin.enqueue(ErrorResponse(status=500))
    event = PaymentFailedEvent.model_validate(payment_failed_document(account_id, event_id="evt-500"))

    deps.apply_payment_failed(event)

    failed_once = stored_notification(deps, account_id, "evt-500")
    assert (failed_once.status, failed_once.attempts) == (NotificationStatus.PENDING, 1)
    assert failed_once.last_error is not None
    assert "500" in failed_once.last_error
    assert failed_once.next_attempt_at == NOW + timedelta(minutes=1)

    clock.advance(timedelta(seconds=30))
    assert deliver(deps.outbox, account_id).sent == []
    clock.advance(timedelta(seconds=30))
    assert deliver(deps.outbox, account_id).sent == [failed_once.id]

    assert stored_notification(deps, account_id, "evt-500").status is NotificationStatus.SENT
    assert [d.operation_id for d in acs_standin.delivered] == [acs_standin.accepted[-1].operation_id]

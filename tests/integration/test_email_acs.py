from __future__ import annotations

import base64
import socket
from typing import TYPE_CHECKING

import pytest

from shared.domain.email import OutgoingEmail, SendStatus
from shared.email import AcsEmailSender
from tests.support.acs_standin import Accepted, AcsEmailStandin, ErrorResponse, FailedOperation, Throttled

if TYPE_CHECKING:
    from collections.abc import Iterator

SENDER = "billing@contoso.example"


@pytest.fixture
def acs_standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[AcsEmailStandin]:
    with AcsEmailStandin() as standin:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(standin.ca_bundle_path))
        yield standin


@pytest.fixture
def sender(acs_standin: AcsEmailStandin) -> Iterator[AcsEmailSender]:
    acs_sender = AcsEmailSender(acs_standin.connection_string, SENDER, poll_timeout_seconds=5)
    yield acs_sender
    acs_sender.close()


def an_email(operation_id: str = "notification-0001") -> OutgoingEmail:
    return OutgoingEmail(
        operation_id=operation_id,
        to_address="ada@example.test",
        to_name="Ada Lovelace",
        subject="Your payment failed",
        plain_text="Hello Ada, your payment failed.",
        html="<p>Hello Ada, your payment failed.</p>",
        reply_to="support@contoso.example",
    )


def test_a_successful_send_returns_sent_with_the_acs_operation_id(
    sender: AcsEmailSender, acs_standin: AcsEmailStandin
) -> None:
    outcome = sender.send(an_email("notification-0001"))

    assert outcome.status is SendStatus.SENT
    assert outcome.message_id == "notification-0001"
    assert [received.operation_id for received in acs_standin.delivered] == ["notification-0001"]


def test_the_service_receives_sender_recipient_subject_text_and_html(
    sender: AcsEmailSender, acs_standin: AcsEmailStandin
) -> None:
    sender.send(an_email())

    (received,) = acs_standin.delivered
    assert received.message == {
        "senderAddress": SENDER,
        "recipients": {"to": [{"address": "ada@example.test", "displayName": "Ada Lovelace"}]},
        "content": {
            "subject": "Your payment failed",
            "plainText": "Hello Ada, your payment failed.",
            "html": "<p>Hello Ada, your payment failed.</p>",
        },
        "replyTo": [{"address": "support@contoso.example"}],
    }


def test_a_wrong_access_key_returns_failed_instead_of_raising(acs_standin: AcsEmailStandin) -> None:
    wrong_key = base64.b64encode(b"not the key").decode()
    acs_sender = AcsEmailSender(acs_standin.connection_string_with_key(wrong_key), SENDER)

    outcome = acs_sender.send(an_email())

    assert outcome.status is SendStatus.FAILED
    assert outcome.error is not None
    assert "401" in outcome.error
    assert acs_standin.unauthorized_requests == 1
    assert acs_standin.delivered == []
    acs_sender.close()


def test_throttling_returns_retry_with_the_retry_after_seconds(
    sender: AcsEmailSender, acs_standin: AcsEmailStandin
) -> None:
    acs_standin.enqueue(Throttled(retry_after_seconds=37))

    outcome = sender.send(an_email())

    assert outcome.status is SendStatus.RETRY
    assert outcome.retry_after_seconds == 37
    assert acs_standin.delivered == []


def test_a_server_error_returns_retry(sender: AcsEmailSender, acs_standin: AcsEmailStandin) -> None:
    acs_standin.enqueue(ErrorResponse(status=500))

    outcome = sender.send(an_email())

    assert outcome.status is SendStatus.RETRY
    assert outcome.error == "HTTP 500 InternalServerError"


def test_a_rejected_request_returns_failed(sender: AcsEmailSender, acs_standin: AcsEmailStandin) -> None:
    acs_standin.enqueue(ErrorResponse(status=400, code="InvalidSenderUserName"))

    outcome = sender.send(an_email())

    assert outcome.status is SendStatus.FAILED
    assert outcome.error == "HTTP 400 InvalidSenderUserName"


def test_an_operation_that_fails_for_good_returns_failed_with_its_code(
    sender: AcsEmailSender, acs_standin: AcsEmailStandin
) -> None:
    acs_standin.enqueue(FailedOperation(code="EmailDroppedAllRecipientsSuppressed"))

    outcome = sender.send(an_email())

    assert outcome.status is SendStatus.FAILED
    assert outcome.error == "operation Failed EmailDroppedAllRecipientsSuppressed"


def test_an_operation_that_fails_for_a_transient_cause_returns_retry(
    sender: AcsEmailSender, acs_standin: AcsEmailStandin
) -> None:
    acs_standin.enqueue(FailedOperation(code="ServiceUnavailable"))

    outcome = sender.send(an_email())

    assert outcome.status is SendStatus.RETRY


def test_sending_the_same_operation_id_twice_delivers_one_message(
    sender: AcsEmailSender, acs_standin: AcsEmailStandin
) -> None:
    first = sender.send(an_email("notification-0042"))
    second = sender.send(an_email("notification-0042"))

    assert first.status is second.status is SendStatus.SENT
    assert first.message_id == second.message_id
    assert len(acs_standin.accepted) == 2
    assert len(acs_standin.delivered) == 1


def test_a_retry_after_throttling_with_the_same_operation_id_delivers_once(
    sender: AcsEmailSender, acs_standin: AcsEmailStandin
) -> None:
    acs_standin.enqueue(Throttled(retry_after_seconds=1))

    outcomes = [sender.send(an_email("notification-0007")) for _ in range(2)]

    assert [outcome.status for outcome in outcomes] == [SendStatus.RETRY, SendStatus.SENT]
    assert len(acs_standin.delivered) == 1


def test_an_operation_still_running_at_the_poll_timeout_returns_retry(acs_standin: AcsEmailStandin) -> None:
    acs_standin.enqueue(Accepted(running_polls=3))
    impatient_sender = AcsEmailSender(acs_standin.connection_string, SENDER, poll_timeout_seconds=0.2)

    outcome = impatient_sender.send(an_email())

    assert outcome.status is SendStatus.RETRY
    assert outcome.error == "timed out waiting for the ACS operation"


def test_an_unreachable_service_returns_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    key = base64.b64encode(b"any key").decode()
    acs_sender = AcsEmailSender(f"endpoint=https://127.0.0.1:{closed_port}/;accesskey={key}", SENDER)

    outcome = acs_sender.send(an_email())

    assert outcome.status is SendStatus.RETRY
    assert outcome.error == "transport error: ServiceRequestError"
    acs_sender.close()

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from typing import TYPE_CHECKING

import pytest

from shared.domain.email import OutgoingEmail, SendStatus
from shared.email import OutboxEmailSender

if TYPE_CHECKING:
    from pathlib import Path

SENT_AT = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def outbox(tmp_path: Path) -> OutboxEmailSender:
    return OutboxEmailSender(tmp_path / "outbox", "billing@contoso.example", clock=lambda: SENT_AT)


def an_email(operation_id: str = "notification-0001", subject: str = "Payment failed") -> OutgoingEmail:
    return OutgoingEmail(
        operation_id=operation_id,
        to_address="ada@example.test",
        to_name="Ada Lovelace",
        subject=subject,
        plain_text="Hello Ada,\nyour payment failed.\n",
        html="<p>Hello Ada, your payment <strong>failed</strong>.</p>\n",
        reply_to="support@contoso.example",
    )


def written_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "outbox").glob("*.eml"))


def read_message(path: Path) -> EmailMessage:
    message = email.message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def test_sending_writes_one_eml_file_and_returns_sent(outbox: OutboxEmailSender, tmp_path: Path) -> None:
    outcome = outbox.send(an_email())

    assert outcome.status is SendStatus.SENT
    assert outcome.message_id
    assert len(written_files(tmp_path)) == 1


def test_the_file_parses_as_an_email_with_headers_and_both_parts(outbox: OutboxEmailSender, tmp_path: Path) -> None:
    outcome = outbox.send(an_email())

    message = read_message(written_files(tmp_path)[0])
    assert message["From"] == "billing@contoso.example"
    assert message["To"] == "Ada Lovelace <ada@example.test>"
    assert message["Subject"] == "Payment failed"
    assert message["Reply-To"] == "support@contoso.example"
    assert message["Date"].datetime == SENT_AT
    assert message["Message-ID"] == f"<{outcome.message_id}>"
    assert message.get_content_type() == "multipart/alternative"
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    assert text_part is not None
    assert html_part is not None
    assert text_part.get_content() == "Hello Ada,\nyour payment failed.\n"
    assert html_part.get_content() == "<p>Hello Ada, your payment <strong>failed</strong>.</p>\n"


def test_the_file_name_tells_when_to_whom_and_what(outbox: OutboxEmailSender, tmp_path: Path) -> None:
    outbox.send(an_email(subject="Payment failed: action needed / <urgent>"))

    name = written_files(tmp_path)[0].name
    timestamp, recipient, subject, short_id = name.removesuffix(".eml").split("__")
    assert timestamp == "20261124T100000Z"
    assert recipient == "ada@example.test"
    assert subject == "payment-failed-action-needed-urgent"
    assert short_id.isalnum()


def test_sending_the_same_operation_id_twice_leaves_one_file_and_the_same_message_id(
    tmp_path: Path,
) -> None:
    times = iter([SENT_AT, datetime(2026, 11, 24, 10, 5, 0, tzinfo=UTC)])
    outbox = OutboxEmailSender(tmp_path / "outbox", "billing@contoso.example", clock=lambda: next(times))

    first = outbox.send(an_email("notification-0042"))
    second = outbox.send(an_email("notification-0042"))

    assert first.status is second.status is SendStatus.SENT
    assert first.message_id == second.message_id
    assert len(written_files(tmp_path)) == 1


def test_different_operation_ids_write_different_files(outbox: OutboxEmailSender, tmp_path: Path) -> None:
    first = outbox.send(an_email("notification-0001"))
    second = outbox.send(an_email("notification-0002"))

    assert first.message_id != second.message_id
    assert len(written_files(tmp_path)) == 2


def test_no_temporary_files_are_left_behind(outbox: OutboxEmailSender, tmp_path: Path) -> None:
    outbox.send(an_email())
    outbox.send(an_email())

    assert list((tmp_path / "outbox").glob("*.tmp")) == []


def test_a_subject_with_a_line_break_is_refused_not_written(outbox: OutboxEmailSender, tmp_path: Path) -> None:
    outcome = outbox.send(an_email(subject="Payment failed\nBcc: someone@example.test"))

    assert outcome.status is SendStatus.FAILED
    assert written_files(tmp_path) == []


def test_the_log_names_the_operation_but_not_the_recipient(
    outbox: OutboxEmailSender, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="shared.email.outbox"):
        outbox.send(an_email())

    assert caplog.records
    assert "ada@example.test" not in caplog.text
    assert "Ada" not in caplog.text

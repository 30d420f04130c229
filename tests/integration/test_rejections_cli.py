"""`python -m cli rejections list|resubmit` against Azurite: the operator's way back for a rejected message."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from cli.__main__ import main
from devhost.azurite import AzuriteProcess
from shared.bootstrap import dependencies
from shared.domain.rejection import RejectionStatus
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.services.rejections import record_rejection

pytestmark = pytest.mark.azurite

AT = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def app_settings(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path))
    dependencies.cache_clear()
    yield
    dependencies.cache_clear()


@pytest.fixture
def payment_queue(azurite: AzuriteProcess) -> QueueClient:
    return QueueClient.from_connection_string(
        azurite.connection_string, PAYMENT_EVENTS_QUEUE, message_decode_policy=BinaryBase64DecodePolicy()
    )


def drain(queue: QueueClient) -> list[bytes]:
    """Take every visible message off the queue (other tests may have left some there)."""
    bodies: list[bytes] = []
    try:
        messages = list(queue.receive_messages(max_messages=32, visibility_timeout=1))
    except ResourceNotFoundError:  # the queue does not exist yet
        return bodies
    for message in messages:
        bodies.append(message.content)
        queue.delete_message(message)
    return bodies


def a_rejected_message() -> tuple[str, bytes]:
    message_id = f"msg-{uuid.uuid4().hex[:12]}"
    body = b'{"specversion": "1.0", "id": "evt-bad-amount", "type": "payment.failed"}'
    record_rejection(
        dependencies().rejections,
        body=body,
        reason="data: Field required",
        at=AT,
        event_id="evt-bad-amount",
        event_type="payment.failed",
        message_id=message_id,
        dequeue_count=1,
    )
    return message_id, body


@pytest.mark.usefixtures("app_settings")
def test_list_shows_the_rejection_with_its_event_id_and_reason(capsys: pytest.CaptureFixture[str]) -> None:
    message_id, _ = a_rejected_message()

    assert main(["rejections", "list"]) == 0

    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(message_id))
    assert "2026-11-24 10:00:00" in line
    assert "rejected" in line
    assert "evt-bad-amount" in line
    assert line.endswith("data: Field required")


@pytest.mark.usefixtures("app_settings")
def test_list_as_json_includes_the_message_body(capsys: pytest.CaptureFixture[str]) -> None:
    message_id, body = a_rejected_message()

    assert main(["rejections", "list", "--json", "--status", "rejected"]) == 0

    records = {record["id"]: record for record in json.loads(capsys.readouterr().out)}
    assert records[message_id]["body"] == body.decode()
    assert records[message_id]["status"] == "rejected"


@pytest.mark.usefixtures("app_settings")
def test_resubmit_puts_the_exact_bytes_back_on_the_queue_base64_encoded_and_marks_the_rejection(
    payment_queue: QueueClient, capsys: pytest.CaptureFixture[str]
) -> None:
    drain(payment_queue)
    message_id, body = a_rejected_message()

    assert main(["rejections", "resubmit", message_id]) == 0

    assert drain(payment_queue) == [body]
    rejection = dependencies().get_rejection(message_id)
    assert rejection is not None
    assert (rejection.status, rejection.resubmit_count) == (RejectionStatus.RESUBMITTED, 1)
    assert f"re-submitted {message_id} (event evt-bad-amount)" in capsys.readouterr().out


@pytest.mark.usefixtures("app_settings")
def test_resubmitting_twice_needs_force(payment_queue: QueueClient, capsys: pytest.CaptureFixture[str]) -> None:
    drain(payment_queue)
    message_id, body = a_rejected_message()
    main(["rejections", "resubmit", message_id])

    assert main(["rejections", "resubmit", message_id]) == 1
    assert "pass --force" in capsys.readouterr().out
    assert main(["rejections", "resubmit", message_id, "--force"]) == 0

    assert drain(payment_queue) == [body, body]


@pytest.mark.usefixtures("app_settings")
def test_resubmitting_an_unknown_id_fails_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rejections", "resubmit", "no-such-rejection"]) == 1
    assert "no rejection 'no-such-rejection'" in capsys.readouterr().out

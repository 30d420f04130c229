"""Rejected messages on the in-memory fakes: kept once, listed for operators, re-submitted with their exact bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.rejection import RejectionStatus
from shared.services.rejections import AlreadyResubmittedError, RejectionNotFoundError
from shared.settings import Settings
from tests.fakes import build_in_memory

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
BODY = b'{"specversion":"1.0","id":"evt-9","type":"payment.refunded"}'


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(clock: FixedClock) -> Dependencies:
    return build_in_memory(Settings(), clock)


def test_a_message_recorded_twice_is_kept_once_with_its_first_reason_and_exact_bytes(
    deps: Dependencies, clock: FixedClock
) -> None:
    first = deps.record_rejection(body=BODY, reason="unknown event type", event_id="evt-9", message_id="msg-1")
    clock.advance(timedelta(minutes=1))

    again = deps.record_rejection(body=BODY, reason="another reason", message_id="msg-1", dequeue_count=2)

    assert again == first
    assert deps.list_rejections() == [first]
    assert (first.id, first.event_id, first.raw_body, first.received_at) == ("msg-1", "evt-9", BODY, NOW)


def test_rejections_are_listed_newest_first_and_by_status(deps: Dependencies, clock: FixedClock) -> None:
    older = deps.record_rejection(body=b"{}", reason="not an event", message_id="msg-1")
    clock.advance(timedelta(hours=1))
    newer = deps.record_rejection(body=b"[]", reason="not an event", message_id="msg-2")
    resubmitted = deps.resubmit_rejection(older.id, lambda body: None)

    assert [r.id for r in deps.list_rejections()] == [newer.id, older.id]
    assert deps.list_rejections(RejectionStatus.REJECTED) == [newer]
    assert deps.list_rejections(RejectionStatus.RESUBMITTED) == [resubmitted]


def test_a_message_without_a_usable_id_is_keyed_by_its_body(deps: Dependencies) -> None:
    first = deps.record_rejection(body=BODY, reason="bad", message_id=None)
    again = deps.record_rejection(body=BODY, reason="bad", message_id="not a usable id!")

    assert first.id.startswith("body-")
    assert again.id == first.id
    assert deps.get_rejection(first.id) == first


def test_resubmitting_sends_the_exact_bytes_and_marks_the_rejection(deps: Dependencies, clock: FixedClock) -> None:
    rejection = deps.record_rejection(body=BODY, reason="unknown event type", message_id="msg-1")
    clock.advance(timedelta(days=1))
    sent: list[bytes] = []

    updated = deps.resubmit_rejection(rejection.id, sent.append)

    assert sent == [BODY]
    assert (updated.status, updated.resubmitted_at, updated.resubmit_count) == (
        RejectionStatus.RESUBMITTED,
        NOW + timedelta(days=1),
        1,
    )
    assert deps.get_rejection(rejection.id) == updated


def test_resubmitting_twice_needs_force_and_an_unknown_id_is_not_found(deps: Dependencies) -> None:
    rejection = deps.record_rejection(body=BODY, reason="unknown event type", message_id="msg-1")
    sent: list[bytes] = []
    deps.resubmit_rejection(rejection.id, sent.append)

    with pytest.raises(AlreadyResubmittedError):
        deps.resubmit_rejection(rejection.id, sent.append)
    forced = deps.resubmit_rejection(rejection.id, sent.append, force=True)

    assert sent == [BODY, BODY]
    assert forced.resubmit_count == 2
    with pytest.raises(RejectionNotFoundError):
        deps.resubmit_rejection("msg-unknown", sent.append)


def test_of_two_operators_resubmitting_at_once_the_first_record_stands(deps: Dependencies, clock: FixedClock) -> None:
    rejection = deps.record_rejection(body=BODY, reason="unknown event type", message_id="msg-1")
    sent: list[bytes] = []
    theirs = []

    def send_while_the_other_operator_resubmits(body: bytes) -> None:
        sent.append(body)
        if len(theirs) == 0:  # the other operator read, sent and recorded while our message was on its way
            clock.advance(timedelta(seconds=1))
            theirs.append(deps.resubmit_rejection(rejection.id, sent.append))

    ours = deps.resubmit_rejection(rejection.id, send_while_the_other_operator_resubmits)

    assert ours == theirs[0]  # our stale version lost the replace; we answer with what is stored
    assert deps.get_rejection(rejection.id) == theirs[0]
    assert theirs[0].resubmit_count == 1
    assert sent == [BODY, BODY]  # harmless: payment events are idempotent by event id

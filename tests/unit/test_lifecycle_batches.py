"""Lifecycle events go out as CloudEvents JSON batches, each packed to fit one Storage queue message after base64."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta

from shared.adapters.lifecycle_queue import BATCH_MEDIA_TYPE, EVENT_SOURCE, MAX_MESSAGE_BYTES, pack_batches
from shared.domain.outbox import LifecycleEvent

AT = datetime(2027, 1, 20, 9, 30, tzinfo=UTC)


def event(number: int, padding: int = 400) -> LifecycleEvent:
    return LifecycleEvent(
        id=f"le-{number:05d}",
        type="subscription.enabled",
        subject=f"/accounts/acc-1/subscriptions/sub-{number:05d}",
        time=AT + timedelta(seconds=number),
        data={"padding": "x" * padding},
    )


def stored_size(body: str) -> int:
    """What a queue message body occupies on the queue: its UTF-8 bytes in base64."""
    return len(base64.b64encode(body.encode()))


def test_the_media_type_is_the_cloudevents_json_batch_format() -> None:
    assert BATCH_MEDIA_TYPE == "application/cloudevents-batch+json"


def test_events_are_packed_in_order_into_json_arrays_of_complete_events_that_fit_a_message() -> None:
    pending = [event(n) for n in range(501)]

    packing = pack_batches(pending)

    bodies = [batch.body for batch in packing.batches]
    assert packing.oversized == ()
    assert all(stored_size(body) <= MAX_MESSAGE_BYTES for body in bodies)
    sent = [item for body in bodies for item in json.loads(body)]
    assert [item["id"] for item in sent] == [e.id for e in pending]
    assert sent == [json.loads(json.dumps(e.to_cloudevent(EVENT_SOURCE))) for e in pending]
    assert [e.id for batch in packing.batches for e in batch.events] == [e.id for e in pending]
    assert len(bodies) < len(pending) / 50


def test_each_message_but_the_last_is_full_up_to_the_next_event() -> None:
    pending = [event(n, padding=997 * (n % 7)) for n in range(300)]

    batches = pack_batches(pending).batches

    for batch, following in itertools.pairwise(batches):
        grown = json.dumps([*json.loads(batch.body), json.loads(following.body)[0]], separators=(",", ":"))
        assert stored_size(grown) > MAX_MESSAGE_BYTES


def test_a_message_exactly_at_the_limit_is_kept_and_one_byte_more_is_set_aside() -> None:
    base = len(pack_batches([event(1, padding=0)]).batches[0].body.encode())  # the body without padding
    fitting = event(1, padding=MAX_MESSAGE_BYTES * 3 // 4 - base)
    too_big = event(2, padding=MAX_MESSAGE_BYTES * 3 // 4 - base + 1)

    (batch,) = pack_batches([fitting]).batches
    packing = pack_batches([too_big])

    assert stored_size(batch.body) == MAX_MESSAGE_BYTES
    assert (packing.batches, [e.id for e in packing.oversized]) == ([], ["le-00002"])


def test_an_event_no_message_can_hold_is_set_aside_and_the_others_are_still_packed() -> None:
    huge = event(2, padding=MAX_MESSAGE_BYTES)

    packing = pack_batches([event(1), huge, event(3)])

    assert [e.id for e in packing.oversized] == ["le-00002"]
    assert [e.id for batch in packing.batches for e in batch.events] == ["le-00001", "le-00003"]

"""The queue's edge decoder refuses, with a reason, input that no retry could ever make an event."""

from __future__ import annotations

import base64

import pytest

from shared.events.decoding import InvalidEventError, decode_payment_event
from tests.support.payment_events import a_charge, body_of, payment_failed_document

HUGE_NUMBER = b"1" * 4301  # one digit past Python's int-string conversion limit
DEEP_NESTING = b"[" * 20_000 + b"]" * 20_000


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"specversion": "1.0", "id": "evt-1", "n": ' + HUGE_NUMBER + b"}", "number with too many digits"),
        (DEEP_NESTING, "nested too deeply"),
        (b'{"specversion": "1.0", "data": ' + DEEP_NESTING + b"}", "nested too deeply"),
        (base64.b64encode(DEEP_NESTING), "nested too deeply"),
        (base64.b64encode(b'{"n": ' + HUGE_NUMBER + b"}"), "number with too many digits"),
    ],
    ids=["huge number", "deep nesting", "deep nesting in data", "base64 of deep nesting", "base64 of a huge number"],
)
def test_json_that_cannot_be_read_is_invalid_input_not_an_error_to_retry(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidEventError) as refused:
        decode_payment_event(body)

    assert reason in refused.value.reason


@pytest.mark.parametrize("amount", ["0", "0.00", "0.0", "0.000"])
def test_an_unpaid_charge_of_nothing_is_invalid_input(amount: str) -> None:
    document = payment_failed_document("acc-1", charges=[a_charge("inv-1", "sub-a", amount)])

    with pytest.raises(InvalidEventError) as refused:
        decode_payment_event(body_of(document))

    assert refused.value.reason == "data.charges[0].amount: Value error, an unpaid charge must be more than zero"
    assert refused.value.event_id == "evt-0001"


def test_the_smallest_positive_amount_is_a_charge() -> None:
    document = payment_failed_document("acc-1", charges=[a_charge("inv-1", "sub-a", "0.01")])

    assert decode_payment_event(body_of(document)).id == "evt-0001"

"""Standard Webhooks verification, checked against the standardwebhooks package as the independent signer."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from shared.domain.clock import FixedClock
from shared.webhooks import (
    WebhookTimestampError,
    WebhookVerificationError,
    WebhookVerifier,
    decode_secret,
    request_fingerprint,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER_SECRET = "whsec_cGFzdGR1ZS1sb2NhbC13ZWJob29rLXNlY3JldC0wMQ=="
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
BODY = b'{"principalId":"user-7","subscriptionId":"sub-a"}'


def signed(
    body: bytes = BODY, *, at: datetime = NOW, webhook_id: str = "msg_1", secret: str = SECRET
) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, at, body.decode()),
    }


def verifier(now: datetime = NOW, tolerance: timedelta = timedelta(minutes=5)) -> WebhookVerifier:
    return WebhookVerifier(SECRET, tolerance=tolerance, clock=FixedClock(now))


def test_a_call_signed_by_the_standardwebhooks_package_verifies() -> None:
    webhook = verifier().verify(signed(), BODY)

    assert webhook.id == "msg_1"
    assert webhook.timestamp == NOW


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {name.upper(): value for name, value in signed().items()}

    assert verifier().verify(headers, BODY).id == "msg_1"


def test_a_changed_body_fails() -> None:
    with pytest.raises(WebhookVerificationError) as caught:
        verifier().verify(signed(), BODY.replace(b"sub-a", b"sub-b"))

    assert caught.value.header == "webhook-signature"


def test_a_signature_made_with_another_secret_fails() -> None:
    with pytest.raises(WebhookVerificationError):
        verifier().verify(signed(secret=OTHER_SECRET), BODY)


def test_a_changed_webhook_id_fails_because_the_id_is_signed() -> None:
    headers = {**signed(), "webhook-id": "msg_2"}

    with pytest.raises(WebhookVerificationError):
        verifier().verify(headers, BODY)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(missing: str) -> None:
    headers = {name: value for name, value in signed().items() if name != missing}

    with pytest.raises(WebhookVerificationError) as caught:
        verifier().verify(headers, BODY)

    assert caught.value.header == missing


def test_one_valid_signature_among_several_is_enough_for_key_rotation() -> None:
    good = signed()["webhook-signature"]
    stale = signed(secret=OTHER_SECRET)["webhook-signature"]
    headers = {**signed(), "webhook-signature": f"v2,ignored {stale} not-a-signature v1,@@@ {good}"}

    assert verifier().verify(headers, BODY).id == "msg_1"


def test_a_signature_of_another_version_is_ignored() -> None:
    value = signed()["webhook-signature"].replace("v1,", "v1a,")

    with pytest.raises(WebhookVerificationError):
        verifier().verify({**signed(), "webhook-signature": value}, BODY)


def test_too_many_signatures_are_refused() -> None:
    good = signed()["webhook-signature"]

    with pytest.raises(WebhookVerificationError):
        verifier().verify({**signed(), "webhook-signature": " ".join([good] * 17)}, BODY)


@pytest.mark.parametrize(
    ("signed_at", "accepted"),
    [
        (NOW - timedelta(seconds=300), True),
        (NOW + timedelta(seconds=300), True),
        (NOW - timedelta(seconds=301), False),
        (NOW + timedelta(seconds=301), False),
    ],
)
def test_the_timestamp_must_be_within_the_tolerance_of_the_injected_clock(signed_at: datetime, accepted: bool) -> None:
    headers = signed(at=signed_at)

    if accepted:
        assert verifier().verify(headers, BODY).timestamp == signed_at
    else:
        with pytest.raises(WebhookTimestampError) as caught:
            verifier().verify(headers, BODY)
        assert caught.value.header == "webhook-timestamp"


def test_the_tolerance_comes_from_the_caller() -> None:
    headers = signed(at=NOW - timedelta(seconds=90))

    with pytest.raises(WebhookTimestampError):
        verifier(tolerance=timedelta(seconds=60)).verify(headers, BODY)


@pytest.mark.parametrize("timestamp", ["", "abc", "1.5", "-1", "\uff11\uff12\uff13", "9" * 20])
def test_a_timestamp_that_is_not_whole_unix_seconds_is_refused(timestamp: str) -> None:
    headers = {**signed(), "webhook-timestamp": timestamp}

    with pytest.raises(WebhookVerificationError):
        verifier().verify(headers, BODY)


@pytest.mark.parametrize("webhook_id", ["msg\n1", "x" * 257, "msg_é"])
def test_an_unprintable_or_overlong_webhook_id_is_refused(webhook_id: str) -> None:
    headers = {**signed(), "webhook-id": webhook_id}

    with pytest.raises(WebhookVerificationError) as caught:
        verifier().verify(headers, BODY)

    assert caught.value.header == "webhook-id"


def test_the_signature_covers_the_raw_bytes_not_a_reserialisation() -> None:
    spaced = b'{ "principalId": "user-7", "subscriptionId": "sub-a" }'

    with pytest.raises(WebhookVerificationError):
        verifier().verify(signed(BODY), spaced)
    assert verifier().verify(signed(spaced), spaced).id == "msg_1"


def test_our_hmac_is_the_documented_construction() -> None:
    key = decode_secret(SECRET)
    expected = hmac.new(key, b"msg_1." + str(int(NOW.timestamp())).encode() + b"." + BODY, hashlib.sha256).digest()

    assert signed()["webhook-signature"] == "v1," + base64.b64encode(expected).decode()


def test_an_unpadded_secret_decodes_like_a_padded_one() -> None:
    assert decode_secret(OTHER_SECRET.rstrip("=")) == decode_secret(OTHER_SECRET)


def test_the_request_fingerprint_covers_method_path_and_body() -> None:
    base = request_fingerprint("POST", "/api/accounts/acc-1/overview", BODY)

    assert base == request_fingerprint("post", "/api/accounts/acc-1/overview", BODY)
    assert base != request_fingerprint("POST", "/api/accounts/acc-2/overview", BODY)
    assert base != request_fingerprint("POST", "/api/accounts/acc-1/overview", BODY + b" ")


ROTATED_SECRET = "whsec_" + base64.b64encode(b"pastdue-rotated-webhook-secret-02").decode()


def rotating_verifier(secrets: str) -> WebhookVerifier:
    return WebhookVerifier(secrets, tolerance=timedelta(minutes=5), clock=FixedClock(NOW))


def test_during_a_rotation_a_call_signed_with_either_secret_verifies() -> None:
    # GIVEN the new secret and the old one, newest first, as PORTAL_WEBHOOK_SECRET holds them during a rotation
    both = rotating_verifier(f"{ROTATED_SECRET} {SECRET}")

    # WHEN the portal signs with the old secret, then with the new one, THEN both calls verify
    assert both.verify(signed(secret=SECRET, webhook_id="msg_old"), BODY).id == "msg_old"
    assert both.verify(signed(secret=ROTATED_SECRET, webhook_id="msg_new"), BODY).id == "msg_new"


def test_during_a_rotation_a_secret_that_is_neither_fails() -> None:
    both = rotating_verifier(f"{ROTATED_SECRET} {SECRET}")

    with pytest.raises(WebhookVerificationError):
        both.verify(signed(secret=OTHER_SECRET), BODY)


def test_after_the_rotation_the_old_secret_no_longer_verifies() -> None:
    rotated = rotating_verifier(ROTATED_SECRET)

    assert rotated.verify(signed(secret=ROTATED_SECRET), BODY).id == "msg_1"
    with pytest.raises(WebhookVerificationError):
        rotated.verify(signed(secret=SECRET), BODY)


def test_a_secret_list_with_a_malformed_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        rotating_verifier(f"{ROTATED_SECRET} whsec_not*base64")

"""Standard Webhooks for the portal's calls: signature and timestamp checks, and a ledger that refuses replays.

Signed content is `{webhook-id}.{webhook-timestamp}.{raw body}`, HMAC-SHA256 with the base64 key after `whsec_`;
`webhook-signature` lists `v1,<base64>` entries separated by spaces (several during key rotation). The configured
secret may itself be several secrets separated by spaces: during a rotation the verifier accepts a signature made
with any of them, so the portal can switch to the new secret whenever it likes. The ledger keeps
each webhook id with a hash of the request it came with: the same id with the same request is a retry, the same id
with another request is a replay and is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared.domain.clock import Clock

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format prefix, not a secret
SIGNATURE_VERSION = "v1"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
MAX_ID_LENGTH = 256
MAX_SIGNATURES = 16
# Ids are kept well beyond the timestamp window: an older message fails the timestamp check anyway.
MIN_LEDGER_RETENTION = timedelta(hours=24)


class WebhookError(Exception):
    """A portal call was refused before it reached a service; `header` names the header at fault."""

    header: str = SIGNATURE_HEADER

    def __init__(self, message: str, header: str | None = None) -> None:
        super().__init__(message)
        if header is not None:
            self.header = header


class WebhookVerificationError(WebhookError):
    """The call is not authentic: a header is missing or malformed, the signature is wrong or the time is off."""


class WebhookTimestampError(WebhookVerificationError):
    header = TIMESTAMP_HEADER


class WebhookReplayError(WebhookError):
    """The webhook id was seen before with another request."""

    header = ID_HEADER


@dataclass(frozen=True)
class VerifiedWebhook:
    id: str
    timestamp: datetime


class WebhookDelivery(StrEnum):
    FIRST = "first"
    RETRY = "retry"


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a `whsec_` secret."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as error:
        raise ValueError("a webhook secret is 'whsec_' followed by base64") from error
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def decode_secrets(secrets: str) -> tuple[bytes, ...]:
    """The HMAC keys of one or more `whsec_` secrets separated by spaces, in the order given."""
    keys = tuple(decode_secret(secret) for secret in secrets.split())
    if not keys:
        raise ValueError("a webhook secret may not be empty")
    return keys


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What a retry must repeat exactly: method, path and raw body (the signature does not cover the path)."""
    digest = hashlib.sha256()
    digest.update(f"{method.upper()} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


class WebhookVerifier:
    """Checks Standard Webhooks headers against the raw body, in constant time, with an injected clock."""

    def __init__(self, secrets: str, *, tolerance: timedelta, clock: Clock) -> None:
        self._keys = decode_secrets(secrets)
        self._tolerance = tolerance
        self._clock = clock

    def verify(self, headers: Mapping[str, str], body: bytes) -> VerifiedWebhook:
        """Return the verified id and time, or raise WebhookVerificationError saying which header is at fault."""
        lowered = {name.lower(): value for name, value in headers.items()}
        webhook_id = _required(lowered, ID_HEADER)
        if len(webhook_id) > MAX_ID_LENGTH or not webhook_id.isprintable() or not webhook_id.isascii():
            raise WebhookVerificationError("webhook-id must be printable ASCII of at most 256 characters", ID_HEADER)
        timestamp = self._timestamp(_required(lowered, TIMESTAMP_HEADER))
        expected = [signature(key, webhook_id, timestamp, body) for key in self._keys]
        entries = _required(lowered, SIGNATURE_HEADER).split()
        if len(entries) > MAX_SIGNATURES:
            raise WebhookVerificationError(f"at most {MAX_SIGNATURES} signatures are accepted")
        matched = False
        for candidate in _v1_signatures(entries):
            for digest in expected:
                # Every pair is compared, so the time taken does not tell which key or candidate matched.
                matched |= hmac.compare_digest(digest, candidate)
        if not matched:
            raise WebhookVerificationError("no valid v1 signature for this body")
        return VerifiedWebhook(id=webhook_id, timestamp=datetime.fromtimestamp(timestamp, UTC))

    def _timestamp(self, value: str) -> int:
        if not value.isascii() or not value.isdigit() or len(value) > 12:
            raise WebhookTimestampError("webhook-timestamp must be Unix time in whole seconds")
        timestamp = int(value)
        now = self._clock.now().timestamp()
        if abs(now - timestamp) > self._tolerance.total_seconds():
            raise WebhookTimestampError(
                f"webhook-timestamp is more than {int(self._tolerance.total_seconds())} seconds away from now"
            )
        return timestamp


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise WebhookVerificationError(f"the {name} header is missing", name)
    return value


def _v1_signatures(entries: list[str]) -> list[bytes]:
    found = []
    for entry in entries:
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION or not encoded:
            continue
        try:
            found.append(base64.b64decode(encoded, validate=True))
        except binascii.Error:
            continue
    return found

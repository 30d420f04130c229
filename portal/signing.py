"""Standard Webhooks signing, as a real portal does it before calling the function app."""

from __future__ import annotations

import base64
import secrets

from shared.webhooks import decode_secrets, signature


class SigningKeyError(ValueError):
    """The configured secret is not `whsec_` followed by base64."""


def signing_key(secrets: str) -> bytes:
    """The HMAC key of a `whsec_` secret; of the first one when several are configured (a rotation, newest first)."""
    try:
        return decode_secrets(secrets)[0]
    except ValueError as error:
        raise SigningKeyError(str(error)) from error


def new_webhook_id() -> str:
    return f"msg_{secrets.token_hex(16)}"


def signature_header(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of id.timestamp.body>`."""
    return f"v1,{base64.b64encode(signature(key, webhook_id, timestamp, body)).decode('ascii')}"


def webhook_headers(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one call."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(key, webhook_id, timestamp, body),
    }

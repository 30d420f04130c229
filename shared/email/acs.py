from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from azure.communication.email import EmailClient
from azure.core.exceptions import AzureError, HttpResponseError

from shared.domain.email import OutgoingEmail, SendOutcome

if TYPE_CHECKING:
    from collections.abc import Mapping

    from azure.core.credentials import TokenCredential

logger = logging.getLogger(__name__)

# The outbox retries with backoff; SDK retries would only sleep inside a function invocation.
_SDK_RETRIES = 0
_POLL_INTERVAL_SECONDS = 1.0
_CONNECTION_TIMEOUT_SECONDS = 10.0
_MIN_READ_TIMEOUT_SECONDS = 5.0
_MAX_ERROR_CODE_LENGTH = 64
_TRANSIENT_OPERATION_ERROR_CODES = frozenset(
    {
        "InternalServerError",
        "ServiceUnavailable",
        "ServerBusy",
        "Timeout",
        "RequestTimeout",
        "OperationTimedOut",
        "TooManyRequests",
    }
)


class AcsEmailSender:
    """Sends email through Azure Communication Services and reports every delivery problem as an outcome.

    ACS is reached with a connection string (an access key), or with its endpoint and an Entra credential.
    """

    def __init__(
        self,
        connection_string: str | None,
        sender_address: str,
        *,
        endpoint: str | None = None,
        credential: TokenCredential | None = None,
        poll_timeout_seconds: float = 30.0,
        client: EmailClient | None = None,
    ) -> None:
        self._sender_address = sender_address
        self._poll_timeout_seconds = poll_timeout_seconds
        self._client = client or _email_client(connection_string, endpoint, credential, poll_timeout_seconds)

    def send(self, email: OutgoingEmail) -> SendOutcome:
        """Send one email, waiting at most `poll_timeout_seconds` for ACS to finish the operation."""
        deadline = time.monotonic() + self._poll_timeout_seconds
        try:
            poller = self._client.begin_send(self._message(email), operation_id=email.operation_id)
            poller.wait(timeout=max(0.0, deadline - time.monotonic()))
            if not poller.done():
                outcome = SendOutcome.retry("timed out waiting for the ACS operation")
            else:
                outcome = _outcome_for_final_status(poller.result(), email.operation_id)
        except HttpResponseError as error:
            outcome = _outcome_for_http_error(error)
        except AzureError as error:
            outcome = SendOutcome.retry(f"transport error: {type(error).__name__}")
        logger.info("ACS email operation %s: %s %s", email.operation_id, outcome.status, outcome.error or "")
        return outcome

    def close(self) -> None:
        self._client.close()

    def _message(self, email: OutgoingEmail) -> dict[str, Any]:
        recipient: dict[str, str] = {"address": email.to_address}
        if email.to_name:
            recipient["displayName"] = email.to_name
        message: dict[str, Any] = {
            "senderAddress": self._sender_address,
            "recipients": {"to": [recipient]},
            "content": {"subject": email.subject, "plainText": email.plain_text, "html": email.html},
        }
        if email.reply_to:
            message["replyTo"] = [{"address": email.reply_to}]
        return message


def _email_client(
    connection_string: str | None,
    endpoint: str | None,
    credential: TokenCredential | None,
    poll_timeout_seconds: float,
) -> EmailClient:
    options: dict[str, Any] = {
        "retry_total": _SDK_RETRIES,
        "polling_interval": _POLL_INTERVAL_SECONDS,
        "connection_timeout": min(_CONNECTION_TIMEOUT_SECONDS, poll_timeout_seconds),
        "read_timeout": max(_MIN_READ_TIMEOUT_SECONDS, poll_timeout_seconds),
    }
    if endpoint is not None and credential is not None:
        return EmailClient(endpoint, credential, **options)
    if connection_string is not None:
        return EmailClient.from_connection_string(connection_string, **options)
    raise ValueError("AcsEmailSender needs a connection string, or an endpoint and a credential")


def _outcome_for_final_status(result: Mapping[str, Any] | None, operation_id: str) -> SendOutcome:
    status = (result or {}).get("status")
    if status == "Succeeded":
        return SendOutcome.sent(str((result or {}).get("id") or operation_id))
    return SendOutcome.retry(f"operation ended as {_short(status)}")


def _outcome_for_http_error(error: HttpResponseError) -> SendOutcome:
    response = error.response
    status_code = error.status_code
    if response is None or status_code is None:
        return SendOutcome.retry("no response from ACS")
    body = _json_body(response)
    headers: Mapping[str, str] = getattr(response, "headers", {})
    if status_code < 400:
        return _outcome_for_failed_operation(body)
    reason = f"HTTP {status_code} {_error_code(body)}".strip()
    if status_code == 429:
        return SendOutcome.retry(reason, retry_after_seconds=_retry_after_seconds(headers))
    if status_code >= 500 or status_code == 408:
        return SendOutcome.retry(reason, retry_after_seconds=_retry_after_seconds(headers))
    return SendOutcome.failed(reason)


def _outcome_for_failed_operation(body: Mapping[str, Any]) -> SendOutcome:
    code = _error_code(body)
    reason = f"operation {_short(body.get('status'))} {code}".strip()
    if code in _TRANSIENT_OPERATION_ERROR_CODES:
        return SendOutcome.retry(reason)
    return SendOutcome.failed(reason)


def _json_body(response: Any) -> Mapping[str, Any]:
    try:
        body = response.json()
    except (ValueError, AzureError):
        return {}
    return body if isinstance(body, dict) else {}


def _error_code(body: Mapping[str, Any]) -> str:
    # Only the machine-readable code: ACS error messages may quote recipient addresses.
    error = body.get("error")
    return _short(error.get("code")) if isinstance(error, dict) and error.get("code") else ""


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After") or headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


def _short(value: object) -> str:
    text = "".join(character for character in str(value) if character.isalnum() or character in "._-")
    return text[:_MAX_ERROR_CODE_LENGTH] or "unknown"

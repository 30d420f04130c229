"""An email on its way out: what is sent, what came of it, and the rendered parts it is made of."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class OutgoingEmail(BaseModel):
    """One rendered email to one recipient, keyed by the caller's deterministic operation id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    operation_id: str
    to_address: str
    to_name: str | None
    subject: str
    plain_text: str
    html: str
    reply_to: str | None = None


class SendStatus(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


class SendOutcome(BaseModel):
    """What became of one send attempt; `error` is short and free of personal data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: SendStatus
    message_id: str | None = None
    retry_after_seconds: float | None = None
    error: str | None = None

    @classmethod
    def sent(cls, message_id: str) -> SendOutcome:
        return cls(status=SendStatus.SENT, message_id=message_id)

    @classmethod
    def retry(cls, error: str, retry_after_seconds: float | None = None) -> SendOutcome:
        return cls(status=SendStatus.RETRY, error=error, retry_after_seconds=retry_after_seconds)

    @classmethod
    def failed(cls, error: str) -> SendOutcome:
        return cls(status=SendStatus.FAILED, error=error)


class RenderedEmail(BaseModel):
    """The three parts of a rendered email."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    plain_text: str
    html: str


class EmailRenderingError(Exception):
    """Base class for errors while rendering an email template."""

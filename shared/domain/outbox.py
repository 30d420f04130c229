"""Effects that leave the system (emails, lifecycle events), recorded with the state change that causes them."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Self

from pydantic import Field, JsonValue

from shared.domain.model import MAX_EMAIL_LENGTH, Frozen, Identifier, Locale

MAX_SEND_ATTEMPTS = 12
_BACKOFF_CAP = timedelta(hours=6)
STATUS_DETAIL_LENGTH = 512


class NotificationStatus(StrEnum):
    """Where an email is: waiting, handed to the mailer, or what its delivery report said (FAILED: either gave up)."""

    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    SUPPRESSED = "suppressed"
    QUARANTINED = "quarantined"
    FILTERED_SPAM = "filtered_spam"
    FAILED = "failed"


class Notification(Frozen):
    """An email to the account's notification address; its id is derived from its cause, so it exists once."""

    id: Identifier
    template: str
    locale: Locale
    # Copied from the account, whose address was validated where it entered (EmailAddress): an address stored
    # before today's rule must not stop the effects an email belongs to; its send fails and is reported instead.
    to_address: str = Field(max_length=MAX_EMAIL_LENGTH)
    context: dict[str, JsonValue]
    created_at: datetime
    status: NotificationStatus = NotificationStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime
    sent_at: datetime | None = None
    message_id: str | None = None
    last_error: str | None = None
    # From the latest delivery report: what the receiving side said, and when that delivery attempt was made.
    status_detail: str | None = Field(default=None, max_length=STATUS_DETAIL_LENGTH)
    delivery_attempt_at: datetime | None = None

    @property
    def is_pending(self) -> bool:
        return self.status is NotificationStatus.PENDING

    def is_due(self, now: datetime) -> bool:
        return self.is_pending and self.next_attempt_at <= now

    def mark_sent(self, message_id: str | None, at: datetime) -> Self:
        return self.model_copy(
            update={
                "status": NotificationStatus.SENT,
                "attempts": self.attempts + 1,
                "sent_at": at,
                "message_id": message_id,
                "last_error": None,
            }
        )

    def mark_retry(self, error: str, at: datetime, retry_after: timedelta | None = None) -> Self:
        """Keep it pending with exponential backoff (or the server's Retry-After); give up after many tries."""
        attempts = self.attempts + 1
        if attempts >= MAX_SEND_ATTEMPTS:
            return self.mark_failed(error, at)
        backoff = min(timedelta(minutes=2 ** (attempts - 1)), _BACKOFF_CAP)
        delay = max(backoff, retry_after or timedelta(0))
        return self.model_copy(update={"attempts": attempts, "next_attempt_at": at + delay, "last_error": error})

    def record_delivery(
        self, status: NotificationStatus, detail: str | None, attempt_at: datetime, message_id: str
    ) -> Self:
        """What a delivery report says; an email still pending here was sent, its outcome just not recorded yet."""
        return self.model_copy(
            update={
                "status": status,
                "status_detail": detail[:STATUS_DETAIL_LENGTH] if detail else None,
                "delivery_attempt_at": attempt_at,
                "message_id": self.message_id or message_id,
                "sent_at": self.sent_at or attempt_at,
                "attempts": self.attempts or 1,
            }
        )

    def mark_failed(self, error: str, at: datetime) -> Self:
        return self.model_copy(
            update={
                "status": NotificationStatus.FAILED,
                "attempts": self.attempts + 1,
                "last_error": error,
                "next_attempt_at": at,
            }
        )


class LifecycleEvent(Frozen):
    """A CloudEvent for the billing engine and resource providers; consumers de-duplicate by `id`."""

    id: Identifier
    type: str
    subject: str
    time: datetime
    data: dict[str, JsonValue]

    def to_cloudevent(self, source: str) -> dict[str, JsonValue]:
        return {
            "specversion": "1.0",
            "id": self.id,
            "type": self.type,
            "source": source,
            "subject": self.subject,
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.data,
        }

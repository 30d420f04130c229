"""A queue message refused as bad input: kept aside with its reason and its exact bytes, re-submitted after a fix."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Self

from shared.domain.model import IDENTIFIER_PATTERN, Frozen

_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
_PREVIEW_LENGTH = 200


class RejectionStatus(StrEnum):
    REJECTED = "rejected"
    RESUBMITTED = "resubmitted"


class Rejection(Frozen):
    """A message that was not processed because of its content, with the exact bytes the host delivered."""

    id: str
    queue: str
    message_id: str | None
    event_id: str | None
    event_type: str | None
    reason: str
    raw_body_base64: str
    received_at: datetime
    dequeue_count: int | None
    status: RejectionStatus = RejectionStatus.REJECTED
    resubmitted_at: datetime | None = None
    resubmit_count: int = 0

    @property
    def raw_body(self) -> bytes:
        return base64.b64decode(self.raw_body_base64)

    @property
    def preview(self) -> str:
        text = self.raw_body.decode("utf-8", errors="replace")
        flat = " ".join(text.split())
        return flat if len(flat) <= _PREVIEW_LENGTH else flat[: _PREVIEW_LENGTH - 1] + "…"

    def resubmitted(self, at: datetime) -> Self:
        return self.model_copy(
            update={
                "status": RejectionStatus.RESUBMITTED,
                "resubmitted_at": at,
                "resubmit_count": self.resubmit_count + 1,
            }
        )


def is_rejection_id(identifier: str) -> bool:
    return bool(_IDENTIFIER.fullmatch(identifier))


def rejection_id(message_id: str | None, body: bytes) -> str:
    """The queue message id when it is a usable key (a redelivery is then recorded once), else a hash of the body."""
    if message_id and is_rejection_id(message_id):
        return message_id
    return "body-" + hashlib.sha256(body).hexdigest()[:32]

"""Idempotency-Key records of the settle-balance route, after Powertools' idempotency utility and Stripe's keys.

One record per key and account, stored in the account partition beside the settlement it started, so claiming the
key and recording the pending settlement are one atomic write. A reused key with another payload is an error; a
completed key answers with the stored response.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Self

from pydantic import JsonValue

from shared.domain.model import Frozen, Identifier


class IdempotencyStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class IdempotencyRecord(Frozen):
    """The first request made with one Idempotency-Key: its payload hash, its settlement and, once done, its answer."""

    settlement_id: Identifier
    payload_hash: str
    status: IdempotencyStatus = IdempotencyStatus.IN_PROGRESS
    response: dict[str, JsonValue] | None = None
    created_at: datetime
    completed_at: datetime | None = None

    @property
    def is_completed(self) -> bool:
        return self.status is IdempotencyStatus.COMPLETED

    def complete(self, response: dict[str, JsonValue], at: datetime) -> Self:
        if self.is_completed:
            return self
        return self.model_copy(update={"status": IdempotencyStatus.COMPLETED, "response": response, "completed_at": at})

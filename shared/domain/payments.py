"""What a payment gateway answers to a charge, as the settle-balance rules read it."""

from __future__ import annotations

from enum import StrEnum

from shared.domain.model import Frozen
from shared.domain.money import Money

GATEWAY_TIMEOUT = "gateway_timeout"
INVALID_TOKEN = "invalid_token"  # noqa: S105 - a decline reason, not a secret


class ChargeOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    UNKNOWN = "unknown"  # no answer in time: the charge may or may not have happened; look it up later


class ChargeResult(Frozen):
    idempotency_key: str
    outcome: ChargeOutcome
    amount: Money
    charge_id: str | None = None
    reason: str | None = None
    card_brand: str | None = None
    card_last4: str | None = None


class GatewayKeyReuseError(Exception):
    """An idempotency key was used again for another amount or card."""

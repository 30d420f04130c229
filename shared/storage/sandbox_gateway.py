"""A sandbox payment gateway with documented test tokens, so the flow runs locally; its ledger is table `gateway`.

Charges are idempotent per key, as with Stripe's Idempotency-Key: the same key returns the first result and never
charges twice; the same key with another amount or card is refused. The ledger lets a process that crashed after
charging find its charge again. It stores no card data: a hash of the token and the display hints (brand, last four
digits) that a real gateway would return.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from shared.domain.clock import Clock
from shared.domain.model import Frozen
from shared.domain.money import Money
from shared.domain.payments import GATEWAY_TIMEOUT, INVALID_TOKEN, ChargeOutcome, ChargeResult, GatewayKeyReuseError
from shared.storage.layout import GATEWAY_PARTITION, GATEWAY_TABLE, gateway_row_key
from shared.storage.tables import TableStorage, storage_errors


class SandboxCard(Frozen):
    brand: str | None
    last4: str | None
    decline_reason: str | None = None
    times_out: bool = False


SANDBOX_TOKENS: dict[str, SandboxCard] = {
    "tok_visa": SandboxCard(brand="visa", last4="4242"),
    "tok_mastercard": SandboxCard(brand="mastercard", last4="4444"),
    "tok_decline": SandboxCard(brand="visa", last4="0002", decline_reason="card_declined"),
    "tok_insufficient_funds": SandboxCard(brand="visa", last4="9995", decline_reason="insufficient_funds"),
    "tok_expired_card": SandboxCard(brand="visa", last4="0069", decline_reason="expired_card"),
    # The charge goes through, but the answer is lost: the caller sees UNKNOWN until it looks the key up.
    "tok_timeout": SandboxCard(brand="visa", last4="0341", times_out=True),
}


class SandboxGateway:
    """A gateway that answers by test token; see SANDBOX_TOKENS and docs/settlement-api.md."""

    def __init__(self, storage: TableStorage, *, clock: Clock) -> None:
        self._table = storage.table(GATEWAY_TABLE)
        self._clock = clock

    def charge(self, amount: Money, token: str, idempotency_key: str) -> ChargeResult:
        """Charge `amount` to the test card `token`, once per `idempotency_key`.

        The ledger row is created first: a new key costs one request, and a repeat finds the first row it collides
        with, exactly as a concurrent attempt does.
        """
        fingerprint = _fingerprint(token)
        card = SANDBOX_TOKENS.get(token)
        result = sandbox_outcome(card, amount, idempotency_key)
        entity = {
            "PartitionKey": GATEWAY_PARTITION,
            "RowKey": gateway_row_key(idempotency_key),
            "IdempotencyKey": idempotency_key,
            "TokenFingerprint": fingerprint,
            "Result": result.model_dump_json(),
            "ChargedAt": self._clock.now(),
        }
        with storage_errors():
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                earlier = self._read(idempotency_key)
                assert earlier is not None, "a ledger row is never deleted"
                return _repeat(earlier, amount, fingerprint)
        if card is not None and card.times_out:
            return result.model_copy(update={"outcome": ChargeOutcome.UNKNOWN, "reason": GATEWAY_TIMEOUT})
        return result

    def lookup(self, idempotency_key: str) -> ChargeResult | None:
        """The recorded outcome for the key (a timed-out charge is found here with its real outcome)."""
        entity = self._read(idempotency_key)
        return None if entity is None else ChargeResult.model_validate_json(entity["Result"])

    def ledger(self) -> list[ChargeResult]:
        """Every charge attempt the sandbox recorded (for tests and operators)."""
        with storage_errors():
            rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": GATEWAY_PARTITION})
            return [ChargeResult.model_validate_json(row["Result"]) for row in rows]

    def _read(self, idempotency_key: str) -> dict[str, Any] | None:
        with storage_errors():
            try:
                return dict(self._table.get_entity(GATEWAY_PARTITION, gateway_row_key(idempotency_key)))
            except ResourceNotFoundError:
                return None


def sandbox_outcome(card: SandboxCard | None, amount: Money, idempotency_key: str) -> ChargeResult:
    """What the sandbox answers for a test card (None: an unknown token)."""
    charge_id = f"ch_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"
    if card is None:
        return ChargeResult(
            idempotency_key=idempotency_key, outcome=ChargeOutcome.DECLINED, amount=amount, reason=INVALID_TOKEN
        )
    if card.decline_reason is not None:
        return ChargeResult(
            idempotency_key=idempotency_key,
            outcome=ChargeOutcome.DECLINED,
            amount=amount,
            charge_id=charge_id,
            reason=card.decline_reason,
            card_brand=card.brand,
            card_last4=card.last4,
        )
    return ChargeResult(
        idempotency_key=idempotency_key,
        outcome=ChargeOutcome.SUCCEEDED,
        amount=amount,
        charge_id=charge_id,
        card_brand=card.brand,
        card_last4=card.last4,
    )


def _repeat(entity: dict[str, Any], amount: Money, fingerprint: str) -> ChargeResult:
    result = ChargeResult.model_validate_json(entity["Result"])
    if result.amount != amount or not hmac.compare_digest(str(entity.get("TokenFingerprint", "")), fingerprint):
        raise GatewayKeyReuseError("this idempotency key was used for another amount or card")
    return result


def _fingerprint(token: str) -> str:
    return hashlib.sha256(f"sandbox-token:{token}".encode()).hexdigest()

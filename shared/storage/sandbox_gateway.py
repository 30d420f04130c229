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
    # Declines only the first charge of the card per account (counted in the ledger), then succeeds: a soft
    # decline that an automatic retry recovers.
    first_charge_decline_reason: str | None = None


SANDBOX_TOKENS: dict[str, SandboxCard] = {
    "tok_visa": SandboxCard(brand="visa", last4="4242"),
    "tok_mastercard": SandboxCard(brand="mastercard", last4="4444"),
    "tok_decline": SandboxCard(brand="visa", last4="0002", decline_reason="card_declined"),
    "tok_insufficient_funds": SandboxCard(brand="visa", last4="9995", decline_reason="insufficient_funds"),
    "tok_expired_card": SandboxCard(brand="visa", last4="0069", decline_reason="expired_card"),
    "tok_stolen_card": SandboxCard(brand="visa", last4="9979", decline_reason="stolen_card"),
    "tok_recovers_on_retry": SandboxCard(brand="visa", last4="3220", first_charge_decline_reason="insufficient_funds"),
    # The charge goes through, but the answer is lost: the caller sees UNKNOWN until it looks the key up.
    "tok_timeout": SandboxCard(brand="visa", last4="0341", times_out=True),
}


class SandboxGateway:
    """A gateway that answers by test token; see SANDBOX_TOKENS and docs/settlement-api.md."""

    def __init__(self, storage: TableStorage, *, clock: Clock) -> None:
        self._table = storage.table(GATEWAY_TABLE)
        self._clock = clock

    def charge(self, amount: Money, token: str, idempotency_key: str, *, account_id: str = "") -> ChargeResult:
        """Charge `amount` to the test card `token` of `account_id`, once per `idempotency_key`.

        The ledger row is created first: a new key costs one request, and a repeat finds the first row it collides
        with, exactly as a concurrent attempt does.
        """
        fingerprint = _fingerprint(token)
        card = SANDBOX_TOKENS.get(token)
        charged_before = self._charges_of(fingerprint, account_id) if card and card.first_charge_decline_reason else 0
        result = sandbox_outcome(card, amount, idempotency_key, earlier_charges=charged_before)
        entity = {
            "PartitionKey": GATEWAY_PARTITION,
            "RowKey": gateway_row_key(idempotency_key),
            "IdempotencyKey": idempotency_key,
            "TokenFingerprint": fingerprint,
            "AccountId": account_id,
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

    def _charges_of(self, fingerprint: str, account_id: str) -> int:
        with storage_errors():
            rows = self._table.query_entities(
                "PartitionKey eq @pk and TokenFingerprint eq @fingerprint and AccountId eq @account",
                parameters={"pk": GATEWAY_PARTITION, "fingerprint": fingerprint, "account": account_id},
                select=["RowKey"],
            )
            return sum(1 for _ in rows)

    def _read(self, idempotency_key: str) -> dict[str, Any] | None:
        with storage_errors():
            try:
                return dict(self._table.get_entity(GATEWAY_PARTITION, gateway_row_key(idempotency_key)))
            except ResourceNotFoundError:
                return None


def sandbox_outcome(
    card: SandboxCard | None, amount: Money, idempotency_key: str, *, earlier_charges: int = 0
) -> ChargeResult:
    """What the sandbox answers for a test card (None: an unknown token) charged `earlier_charges` times before."""
    charge_id = f"ch_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"
    if card is None:
        return ChargeResult(
            idempotency_key=idempotency_key, outcome=ChargeOutcome.DECLINED, amount=amount, reason=INVALID_TOKEN
        )
    decline_reason = card.decline_reason
    if decline_reason is None and earlier_charges == 0:
        decline_reason = card.first_charge_decline_reason
    if decline_reason is not None:
        return ChargeResult(
            idempotency_key=idempotency_key,
            outcome=ChargeOutcome.DECLINED,
            amount=amount,
            charge_id=charge_id,
            reason=decline_reason,
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

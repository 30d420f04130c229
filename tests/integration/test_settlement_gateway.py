"""The sandbox gateway against Azurite: documented test tokens, idempotency per key, a ledger that survives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.domain.clock import FixedClock
from shared.domain.money import Money
from shared.domain.payments import ChargeOutcome, GatewayKeyReuseError
from shared.storage.layout import GATEWAY_TABLE
from shared.storage.sandbox_gateway import SandboxGateway
from shared.storage.tables import TableStorage

pytestmark = pytest.mark.azurite

AMOUNT = Money.parse("69.95", "EUR")
CLOCK = FixedClock(datetime(2026, 11, 30, 9, tzinfo=UTC))


@pytest.fixture
def gateway(table_storage: TableStorage) -> SandboxGateway:
    return SandboxGateway(table_storage, clock=CLOCK)


def key() -> str:
    return f"stl-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("token", "outcome", "reason", "last4"),
    [
        ("tok_visa", ChargeOutcome.SUCCEEDED, None, "4242"),
        ("tok_mastercard", ChargeOutcome.SUCCEEDED, None, "4444"),
        ("tok_decline", ChargeOutcome.DECLINED, "card_declined", "0002"),
        ("tok_insufficient_funds", ChargeOutcome.DECLINED, "insufficient_funds", "9995"),
        ("tok_expired_card", ChargeOutcome.DECLINED, "expired_card", "0069"),
        ("tok_timeout", ChargeOutcome.UNKNOWN, "gateway_timeout", "0341"),
        ("tok_nonsense", ChargeOutcome.DECLINED, "invalid_token", None),
    ],
)
def test_each_documented_token_answers_as_documented(
    gateway: SandboxGateway, token: str, outcome: ChargeOutcome, reason: str | None, last4: str | None
) -> None:
    result = gateway.charge(AMOUNT, token, key())

    assert (result.outcome, result.reason, result.card_last4) == (outcome, reason, last4)
    assert result.amount == AMOUNT


def test_a_timed_out_charge_went_through_and_is_found_by_lookup(gateway: SandboxGateway) -> None:
    idempotency_key = key()
    assert gateway.charge(AMOUNT, "tok_timeout", idempotency_key).outcome is ChargeOutcome.UNKNOWN

    found = gateway.lookup(idempotency_key)

    assert found is not None
    assert found.outcome is ChargeOutcome.SUCCEEDED
    assert gateway.charge(AMOUNT, "tok_timeout", idempotency_key).outcome is ChargeOutcome.SUCCEEDED


def test_the_same_key_returns_the_first_result_and_records_one_charge(gateway: SandboxGateway) -> None:
    idempotency_key = key()

    first = gateway.charge(AMOUNT, "tok_visa", idempotency_key)
    second = gateway.charge(AMOUNT, "tok_visa", idempotency_key)

    assert second == first
    assert [r.idempotency_key for r in gateway.ledger()].count(idempotency_key) == 1


def test_a_new_gateway_instance_sees_the_earlier_charge_as_after_a_crash(table_storage: TableStorage) -> None:
    idempotency_key = key()
    first = SandboxGateway(table_storage, clock=CLOCK).charge(AMOUNT, "tok_visa", idempotency_key)

    restarted = SandboxGateway(table_storage, clock=CLOCK)

    assert restarted.lookup(idempotency_key) == first
    assert restarted.charge(AMOUNT, "tok_visa", idempotency_key) == first


def test_a_card_that_recovers_counts_its_charges_in_the_ledger_across_gateway_instances(
    table_storage: TableStorage,
) -> None:
    account_id = f"acc-{uuid.uuid4().hex[:12]}"
    first = SandboxGateway(table_storage, clock=CLOCK).charge(
        AMOUNT, "tok_recovers_on_retry", key(), account_id=account_id
    )

    another_process = SandboxGateway(table_storage, clock=CLOCK)
    second = another_process.charge(AMOUNT, "tok_recovers_on_retry", key(), account_id=account_id)

    assert (first.outcome, first.reason) == (ChargeOutcome.DECLINED, "insufficient_funds")
    assert second.outcome is ChargeOutcome.SUCCEEDED


@pytest.mark.parametrize(("amount", "token"), [(Money.parse("1.00", "EUR"), "tok_visa"), (AMOUNT, "tok_mastercard")])
def test_the_same_key_for_another_amount_or_card_is_refused(gateway: SandboxGateway, amount: Money, token: str) -> None:
    idempotency_key = key()
    gateway.charge(AMOUNT, "tok_visa", idempotency_key)

    with pytest.raises(GatewayKeyReuseError):
        gateway.charge(amount, token, idempotency_key)


def test_an_unseen_key_is_not_found(gateway: SandboxGateway) -> None:
    assert gateway.lookup(key()) is None


def test_the_ledger_stores_no_token(gateway: SandboxGateway, table_storage: TableStorage) -> None:
    idempotency_key = key()
    gateway.charge(AMOUNT, "tok_mastercard", idempotency_key)

    rows = list(table_storage.table(GATEWAY_TABLE).list_entities())

    assert rows
    assert not any("tok_" in str(value) for row in rows for value in row.values())

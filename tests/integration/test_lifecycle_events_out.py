"""Every lifecycle event the real services put on the queue conforms to schemas/lifecycle-events.schema.json."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import PaymentReceivedEvent
from shared.domain.settle_balance import PaymentChoice
from shared.services.unit_of_work import with_fresh_partition
from tests.support.lifecycle_events import schema_errors
from tests.support.retention import World, make_world, new_account_id, seed_past_due_account
from tests.support.settlement_data import NOW, lifecycle_events, settle_command, settlement_deps, shared_card_account

pytestmark = pytest.mark.azurite

DISABLE_NIGHT = datetime.fromisoformat("2027-02-04T02:00:00+00:00")  # the night after the failure + 30 days
DELETE_NIGHT = DISABLE_NIGHT + timedelta(days=90)


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path) -> Dependencies:
    return settlement_deps(azurite.connection_string, tmp_path / "outbox", FixedClock(NOW))


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path) -> World:
    return make_world(azurite.connection_string, tmp_path)


def conforming(events: list[dict[str, Any]]) -> Counter[str]:
    """The types of `events`, once each event was checked against the schema."""
    for event in events:
        assert schema_errors(event) == [], event
    return Counter(event["type"] for event in events)


def test_a_card_payment_that_re_enables_and_switches_methods_emits_only_conforming_events(
    deps: Dependencies,
) -> None:
    account = shared_card_account().write(deps.accounts)

    deps.settle_balance(settle_command(account.id, "key-1"))

    events = lifecycle_events(deps)
    assert conforming(events) == {"subscription.enabled": 2, "payment_method.replaced": 1}
    assert {e["data"]["reason"] for e in events if e["type"] == "subscription.enabled"} == {"balance_settled"}


def test_a_wire_transfer_that_settles_an_invoice_emits_only_conforming_events(deps: Dependencies) -> None:
    account = shared_card_account().write(deps.accounts)
    pending = deps.settle_balance(settle_command(account.id, "key-inv", payment=PaymentChoice(invoice=True)))
    assert pending.remittance is not None
    received = PaymentReceivedEvent.model_validate(
        {
            "specversion": "1.0",
            "id": "evt-wire-1",
            "type": "payment.received",
            "source": "/bank-reconciliation",
            "time": "2026-11-30T09:00:00Z",
            "data": {
                "accountId": account.id,
                "reference": pending.remittance.reference,
                "amount": pending.remittance.amount,
                "currency": pending.remittance.currency,
            },
        }
    )

    deps.apply_payment_received(received)

    events = lifecycle_events(deps)
    assert conforming(events) == {"subscription.enabled": 2, "payment_method.replaced": 1}
    replaced = next(e for e in events if e["type"] == "payment_method.replaced")
    assert replaced["data"]["paymentMethodKind"] == "invoice"


def test_cancelling_and_deleting_an_unpaid_subscription_emits_only_conforming_events(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, subscriptions=2)

    world.run(DISABLE_NIGHT)
    world.run(DELETE_NIGHT)

    assert conforming(world.lifecycle_events()) == {"subscription.disabled": 2, "subscription.deleted": 2}


def test_healing_a_paid_but_disabled_subscription_emits_only_conforming_events(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    world.run(DISABLE_NIGHT)

    def pay_without_re_enabling(partition: AccountPartition) -> None:
        partition.put(*(c.mark_paid("stl-elsewhere", DISABLE_NIGHT) for c in partition.charges))

    with_fresh_partition(world.deps.accounts, account_id, pay_without_re_enabling)
    world.deps.due.schedule(account_id, DISABLE_NIGHT + timedelta(minutes=5))
    world.run(DISABLE_NIGHT + timedelta(hours=1))

    events = world.lifecycle_events()
    assert conforming(events) == {"subscription.disabled": 1, "subscription.enabled": 1}
    enabled = next(e for e in events if e["type"] == "subscription.enabled")
    assert (enabled["data"]["reason"], enabled["data"]["settlementId"]) == ("self_healed", None)

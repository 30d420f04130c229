"""Every lifecycle event the real services put on the queue conforms to schemas/lifecycle-events.schema.json."""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from cli.demo import describe
from devhost.azurite import AzuriteProcess
from functions.payment_failed_queue import handler
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import TransitionReason
from shared.domain.lifecycle_events import RetentionStep, subscription_enabled
from shared.domain.model import Subscription
from shared.domain.outbox import LifecycleEvent, NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import PaymentReceivedEvent
from shared.domain.settle_balance import PaymentChoice
from shared.domain.settlement import SettlementStatus
from shared.services.unit_of_work import with_fresh_partition
from tests.support.lifecycle_events import events_of, lifecycle_messages, schema_errors
from tests.support.payment_events import a_charge, payment_failed_document
from tests.support.retention import World, make_world, new_account_id, seed_past_due_account
from tests.support.settlement_data import (
    ADMIN,
    NOW,
    VISA,
    lifecycle_events,
    settle_command,
    settlement_deps,
    shared_card_account,
)

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


# --- batches that fit a queue message, and an event that does not --------------------------------------------

QUEUE_MESSAGE_LIMIT = 64 * 1024  # what a Storage queue message may hold, as stored (after base64)


def test_a_settlement_moving_1200_subscriptions_publishes_every_event_in_batches_that_fit_a_queue_message(
    deps: Dependencies,
) -> None:
    account = shared_card_account()
    # Subscription ids as resource providers use them (GUIDs): listed in one event, they exceed a queue message.
    moved = sorted(f"sub-{uuid.uuid4()}" for _ in range(1200))
    account.rows += [Subscription(id=sid, name="Workload", service="Azure", payment_method_id=VISA) for sid in moved]
    account.write(deps.accounts)

    outcome = deps.settle_balance(settle_command(account.id, "key-1"))

    assert outcome.status is SettlementStatus.SUCCEEDED
    messages = lifecycle_messages(
        deps.settings.storage_connection_string.get_secret_value(), deps.settings.lifecycle_queue
    )
    assert all(len(base64.b64encode(body.encode())) <= QUEUE_MESSAGE_LIMIT for body in messages)
    events = events_of(messages)
    assert conforming(events) == {"subscription.enabled": 2, "payment_method.replaced": 5}
    assert len({event["id"] for event in events}) == len(events)
    replaced = sorted((e for e in events if e["type"] == "payment_method.replaced"), key=lambda e: e["data"]["part"])
    assert [(e["data"]["part"], e["data"]["parts"]) for e in replaced] == [(n, 5) for n in range(1, 6)]
    listed = [sid for event in replaced for sid in event["data"]["subscriptionIds"]]
    assert listed == sorted(["sub-a", "sub-b", "sub-c", *moved])
    partition = deps.accounts.load(account.id)
    assert partition.pending_events == []
    assert [n.status for n in partition.notifications] == [NotificationStatus.SENT]


def oversized_event(account_id: str) -> LifecycleEvent:
    """An event that no queue message can hold (as a payment_method.replaced listing every subscription did)."""
    return LifecycleEvent(
        id="le-oversized-0001",
        type="payment_method.replaced",
        subject=f"/accounts/{account_id}/paymentMethods/{VISA}",
        time=NOW - timedelta(hours=1),
        data={"subscriptionIds": [f"sub-{n:05d}-{'x' * 40}" for n in range(2000)]},
    )


def test_an_event_too_large_to_publish_stays_pending_for_the_operator_and_blocks_nothing_else(
    deps: Dependencies, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = shared_card_account()
    enabled = subscription_enabled(
        account.id,
        Subscription(id="sub-z", name="Z", service="Azure", payment_method_id=VISA),
        cause=RetentionStep(reference=NOW),
        reason=TransitionReason.SELF_HEALED,
        at=NOW,
    )
    account.rows += [oversized_event(account.id), enabled]
    account.write(deps.accounts)

    report = deps.deliver(account.id)

    assert (report.published, report.unpublished) == ([enabled.id], ["le-oversized-0001"])
    assert [e["id"] for e in lifecycle_events(deps)] == [enabled.id]
    partition = deps.accounts.load(account.id)
    assert [e.id for e in partition.pending_events] == ["le-oversized-0001"]
    pending = describe(partition)["pendingEvents"]
    assert [(e["id"], e["type"]) for e in pending] == [("le-oversized-0001", "payment_method.replaced")]
    assert [e.account_id for e in deps.due.due(NOW + timedelta(hours=7))].count(account.id) == 1

    # The next payment.failed for the account is processed as usual: applied, its email sent, nothing poisoned.
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    document = payment_failed_document(
        account.id, locale="en-US", event_id="evt-after-oversized", charges=[a_charge("inv-9", "sub-a")]
    )
    document["data"]["account"]["adminPrincipalId"] = ADMIN
    document["data"]["account"]["notificationEmail"] = account.account.notification_email
    document["data"]["paymentMethod"]["id"] = VISA
    handler.payment_failed(
        QueueMessage(id="msg-after-oversized", body=json.dumps(document).encode(), dequeue_count=1, pop_receipt="p")
    )

    after = deps.accounts.load(account.id)
    assert after.has_processed("evt-after-oversized")
    failed_emails = [n for n in after.notifications if n.template == "payment_failed"]
    assert [n.status for n in failed_emails] == [NotificationStatus.SENT]
    assert [e.id for e in after.pending_events] == ["le-oversized-0001"]
    assert deps.get_rejection("msg-after-oversized") is None

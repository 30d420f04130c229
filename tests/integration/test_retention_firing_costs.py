"""What a timer firing costs in storage requests: its own invocation is O(shards) whatever is due, and a firing with
nothing due costs the same whatever happened since the last one (counted with the request hook of every client)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess
from shared.domain.payment_events import PaymentFailedEvent
from shared.storage.layout import DUE_SHARDS
from tests.support.payment_events import payment_failed_document
from tests.support.retention import FAILED_AT, World, make_world, new_account_id, seed_past_due_account
from tests.support.work_queue import clear_work_queues, drain, worker_on

pytestmark = pytest.mark.azurite

FIRST_REMINDER_DUE = FAILED_AT + timedelta(days=8)
# One read of the recorded shard count, then a sweep per shard and the housekeeping sent.
START_PASS_REQUESTS = 1 + DUE_SHARDS + 1


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path) -> World:
    clear_work_queues(azurite.connection_string)
    world = make_world(azurite.connection_string, tmp_path)
    # A process's first pass also creates the work queue and the shard-count row, and the first firing purges
    # webhook ids other tests left behind: done once here, so each figure below is a steady-state firing.
    world.deps.start_retention_pass(FAILED_AT)
    drain(azurite.connection_string, worker_on(world.deps))
    world.counter.reset()
    return world


def whole_firing(world: World, at_offset: timedelta) -> tuple[int, list[str]]:
    """The timer's start of a pass at FAILED_AT + offset, then every item it hands out; the requests they made."""
    world.counter.reset()
    world.deps.start_retention_pass(FAILED_AT + at_offset)
    drained = drain(world.connection_string, worker_on(world.deps))
    return world.counter.reset(), drained.kinds


def test_the_timer_invocation_costs_the_same_with_no_account_due_and_with_200(world: World) -> None:
    world.counter.reset()
    world.deps.start_retention_pass(FIRST_REMINDER_DUE)
    with_none_due = world.counter.reset()
    clear_work_queues(world.connection_string)

    accounts = [new_account_id() for _ in range(200)]
    for account_id in accounts:
        seed_past_due_account(world, account_id)
    due = {entry.account_id for entry in world.deps.due.due(FIRST_REMINDER_DUE)}
    assert due == set(accounts)
    world.counter.reset()
    started = world.deps.start_retention_pass(FIRST_REMINDER_DUE)
    with_200_due = world.counter.reset()

    assert with_200_due == with_none_due == START_PASS_REQUESTS
    assert started.items_sent == DUE_SHARDS + 1
    assert all(world.notifications(account_id) == [] for account_id in accounts[:5])  # the workers review


def test_a_firing_with_nothing_due_costs_the_same_before_and_after_50_failed_payments_whose_emails_went_out(
    world: World,
) -> None:
    before, before_kinds = whole_firing(world, timedelta(hours=1))

    accounts = [new_account_id() for _ in range(50)]
    for account_id in accounts:
        document = payment_failed_document(account_id, event_id=f"evt-{account_id}")
        result = world.deps.apply_payment_failed(PaymentFailedEvent.model_validate(document))
        assert result.emails_sent
    assert len(world.email.sent) == 50
    # Each event left its account's next review on the due index, and nothing due within the next hours.
    scheduled = {entry.account_id for entry in world.deps.due.due(FAILED_AT + timedelta(days=30))}
    assert scheduled >= set(accounts)
    assert not {entry.account_id for entry in world.deps.due.due(FAILED_AT + timedelta(hours=2))} & set(accounts)

    after, after_kinds = whole_firing(world, timedelta(hours=2))

    assert sorted(before_kinds) == sorted(after_kinds) == ["housekeeping"] + ["sweep"] * DUE_SHARDS
    assert after == before

"""A balance settled at any stage of the timeline stops it: nothing further happens to the subscription."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import AlertKind, ChargeStatus
from shared.domain.partition import AccountPartition
from shared.storage.audit_log import TableAuditLog
from tests.support.retention import World, make_world, new_account_id, seed_past_due_account, settle

pytestmark = pytest.mark.azurite

# The nights on which an unpaid subscription has something happen (see test_retention_timeline.py).
MILESTONE_NIGHTS = [
    datetime.fromisoformat(f"{day}T02:00:00+00:00")
    for day in (
        "2027-01-12",
        "2027-01-19",
        "2027-01-30",
        "2027-02-04",
        "2027-04-05",
        "2027-04-28",
        "2027-05-04",
        "2027-05-05",
        "2027-05-10",
    )
]
STAGES = {
    "before any reminder": datetime.fromisoformat("2027-01-06T12:00:00+00:00"),
    "after the first reminder": datetime.fromisoformat("2027-01-12T12:00:00+00:00"),
    "after the final notice (Warned)": datetime.fromisoformat("2027-01-30T12:00:00+00:00"),
    "after the cancellation (Disabled)": datetime.fromisoformat("2027-02-04T12:00:00+00:00"),
    "after the first deletion warning": datetime.fromisoformat("2027-04-05T12:00:00+00:00"),
    "a day before the deletion": datetime.fromisoformat("2027-05-04T12:00:00+00:00"),
}


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path) -> World:
    return make_world(azurite.connection_string, tmp_path)


@pytest.mark.parametrize("settled_at", STAGES.values(), ids=STAGES.keys())
def test_a_settlement_at_any_stage_stops_the_timeline(world: World, settled_at: datetime) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    for night in (n for n in MILESTONE_NIGHTS if n < settled_at):
        world.run(night)
    emails_before = len(world.email.sent)
    events_before = world.lifecycle_events()

    settle(world, account_id, settled_at)
    later = [world.run(night) for night in MILESTONE_NIGHTS if night > settled_at]

    assert [action for report in later for action in report.actions] == []
    assert len(world.email.sent) == emails_before
    assert world.lifecycle_events() == events_before
    partition = world.load(account_id)
    assert world.subscription(account_id).state is SubscriptionState.ENABLED
    assert [c.status for c in partition.charges] == [ChargeStatus.PAID]
    assert [a.kind for a in partition.alerts if a.is_open] == []
    assert TableAuditLog(world.deps.tables).deletions(account_id) == []
    assert world.due_entries(account_id, MILESTONE_NIGHTS[-1] + timedelta(days=365)) == []


class InterferingAccountStore:
    """Wraps the real store: the first time a run commits, someone else commits to the same account just before."""

    def __init__(self, world: World, interfere: Callable[[], object]) -> None:
        self._accounts = world.deps.accounts
        self._interfere: Callable[[], object] | None = interfere

    def load(self, account_id: str) -> AccountPartition:
        return self._accounts.load(account_id)

    def commit(self, partition: AccountPartition) -> None:
        if self._interfere is not None:
            interfere, self._interfere = self._interfere, None
            interfere()
        self._accounts.commit(partition)


@pytest.mark.parametrize(
    "night",
    [MILESTONE_NIGHTS[3], MILESTONE_NIGHTS[7]],
    ids=["while the cancellation is being decided", "while the deletion is being decided"],
)
def test_a_settlement_landing_between_the_read_and_the_commit_wins_and_is_left_alone(
    world: World, night: datetime
) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    for earlier in (n for n in MILESTONE_NIGHTS if n < night):
        world.run(earlier)
    emails_before = len(world.email.sent)
    racing = dataclasses.replace(
        world.deps,
        accounts=InterferingAccountStore(world, lambda: settle(world, account_id, night - timedelta(seconds=1))),
    )

    report = world.run(night, deps=racing)

    assert report.actions == ()
    assert report.accounts_failed == 0
    subscription = world.subscription(account_id)
    assert subscription.state is SubscriptionState.ENABLED
    assert subscription.history[-1].reason == "balance_settled"
    assert len(world.email.sent) == emails_before
    assert {e["type"] for e in world.lifecycle_events()} <= {"subscription.disabled"}
    assert TableAuditLog(world.deps.tables).deletions(account_id) == []
    assert [a.kind for a in world.load(account_id).alerts if a.is_open and a.kind is AlertKind.DISABLED] == []

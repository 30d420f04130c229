"""Collection holds against Azurite: the retention runs pass a held account's deadlines by, and act on them as much
later as the account was held, after an explicit release or at the hold's end."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess
from shared.domain.audit import HoldAction
from shared.domain.holds import EXPIRY_RELEASER
from shared.domain.lifecycle import SubscriptionState
from shared.domain.retention_plan import RetentionActionKind
from shared.domain.retention_policy import MINIMUM_RETENTION_DAYS
from tests.support.retention import FAILED_AT, World, make_world, new_account_id, nightly_runs, seed_past_due_account

pytestmark = pytest.mark.azurite

K = RetentionActionKind
# Without a hold: warned the night of 2027-01-30, cancelled the night of 2027-02-04 (failure + 30 days, 10:00).
ORIGINAL_WARNING_NIGHT = datetime.fromisoformat("2027-01-30T02:00:00+00:00")
ORIGINAL_CANCELLATION_NIGHT = datetime.fromisoformat("2027-02-04T02:00:00+00:00")


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path) -> World:
    return make_world(azurite.connection_string, tmp_path)


def live(world: World, start: datetime, end: datetime) -> list[tuple[str, K]]:
    """Every nightly run after `start` up to `end`; what each did, by night (skipped notices left out)."""
    happened = []
    for night in nightly_runs(start, end):
        report = world.run(night)
        assert report.accounts_failed == 0
        happened += [(night.date().isoformat(), a.kind) for a in report.actions if a.kind is not K.SUPERSEDED]
    return happened


def test_a_held_account_passes_its_cancellation_untouched_and_is_cancelled_ten_days_late_after_ten_days_held(
    world: World,
) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    held_at = datetime.fromisoformat("2027-01-25T09:00:00+00:00")  # after both reminders, before the warning
    released_at = held_at + timedelta(days=10)
    before = live(world, FAILED_AT, held_at - timedelta(hours=8))
    world.clock.set(held_at)
    world.deps.hold_account(account_id, reason="Dispute DX-17", set_by="cli:alice", until=None)

    while_held = live(world, held_at, released_at - timedelta(hours=1))
    state_while_held = world.subscription(account_id).state
    world.clock.set(released_at)
    world.deps.release_account(account_id, released_by="cli:bob")
    due_after_release = world.due_entries(account_id, released_at)
    after = live(world, released_at, ORIGINAL_CANCELLATION_NIGHT + timedelta(days=14))

    assert [kind for _, kind in before] == [K.REMINDER, K.REMINDER]
    assert while_held == []  # the warning (night of 01-30) and the cancellation (night of 02-04) passed by
    assert state_while_held is SubscriptionState.PAST_DUE
    assert due_after_release == [released_at]
    assert after == [
        ((ORIGINAL_WARNING_NIGHT + timedelta(days=10)).date().isoformat(), K.FINAL_NOTICE),
        ((ORIGINAL_CANCELLATION_NIGHT + timedelta(days=10)).date().isoformat(), K.DISABLED),
    ]
    subscription = world.subscription(account_id)
    assert subscription.state is SubscriptionState.DISABLED
    assert [r.action for r in world.deps.audit.holds(account_id)] == [HoldAction.SET, HoldAction.RELEASED]


def test_a_disabled_subscription_held_twenty_days_is_deleted_twenty_days_late_and_never_before_ninety_days(
    world: World,
) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    world.run(ORIGINAL_CANCELLATION_NIGHT)
    disabled_at = world.subscription(account_id).disabled_at
    assert disabled_at == ORIGINAL_CANCELLATION_NIGHT
    held_at = disabled_at + timedelta(days=80)
    until = held_at + timedelta(days=20)
    live(world, disabled_at, held_at - timedelta(hours=1))
    world.clock.set(held_at)
    world.deps.hold_account(account_id, reason="Legal hold LH-4", set_by="ops-7", until=until)

    happened = live(world, held_at, disabled_at + timedelta(days=MINIMUM_RETENTION_DAYS + 25))
    days_after_disabling = [
        ((datetime.fromisoformat(f"{night}T02:00:00+00:00") - disabled_at).days, kind) for night, kind in happened
    ]

    # The 7-day and 1-day deletion warnings and the deletion itself, each 20 days after its original night.
    assert days_after_disabling == [
        (MINIMUM_RETENTION_DAYS + 20 - 7, K.DELETION_WARNING),
        (MINIMUM_RETENTION_DAYS + 20 - 1, K.DELETION_WARNING),
        (MINIMUM_RETENTION_DAYS + 20, K.DELETED),
        (MINIMUM_RETENTION_DAYS + 20, K.PURGED),
    ]
    records = world.deps.audit.holds(account_id)
    assert [(r.action, r.at, r.by) for r in records] == [
        (HoldAction.SET, held_at, "ops-7"),
        (HoldAction.RELEASED, until, EXPIRY_RELEASER),
    ]
    (deletion,) = world.deps.audit.deletions(account_id)
    assert deletion.deleted_at == disabled_at + timedelta(days=MINIMUM_RETENTION_DAYS + 20)


def test_a_hold_placed_the_day_after_disabling_keeps_the_data_past_ninety_days_by_as_long(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    world.run(ORIGINAL_CANCELLATION_NIGHT)
    disabled_at = ORIGINAL_CANCELLATION_NIGHT
    held_at = disabled_at + timedelta(days=1)
    world.clock.set(held_at)
    world.deps.hold_account(account_id, reason="Dispute", set_by="ops-7", until=held_at + timedelta(days=20))

    at_ninety_days = world.run(disabled_at + timedelta(days=MINIMUM_RETENTION_DAYS))
    just_before = world.run(disabled_at + timedelta(days=MINIMUM_RETENTION_DAYS + 20) - timedelta(seconds=1))
    state_before = world.subscription(account_id).state
    at_the_moved_deletion = world.run(disabled_at + timedelta(days=MINIMUM_RETENTION_DAYS + 20))

    assert K.DELETED not in {a.kind for a in (*at_ninety_days.actions, *just_before.actions)}
    assert state_before is SubscriptionState.DISABLED
    assert K.DELETED in {a.kind for a in at_the_moved_deletion.actions}
    assert world.subscription(account_id).state is SubscriptionState.DELETED

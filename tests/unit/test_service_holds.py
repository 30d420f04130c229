"""Holding and releasing on the in-memory fakes: audit rows, due entries, lost races, and the retention run around."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from shared.bootstrap import Dependencies
from shared.domain.audit import HoldAction
from shared.domain.clock import FixedClock
from shared.domain.holds import HoldChange, HoldOutcome, InvalidHoldError
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Subscription
from shared.domain.retention_plan import RetentionActionKind
from shared.domain.settle_balance import AccountNotFoundError
from shared.services.holds import hold_account, release_account
from shared.settings import Settings
from tests.fakes import RacingAccounts, build_in_memory
from tests.support.retention import FAILED_AT, PORTAL, new_account_id, nightly_runs, seed_past_due_account, settle

K = RetentionActionKind
CANCELLATION = FAILED_AT + timedelta(days=30)


@dataclass
class World:
    deps: Dependencies
    settings: Settings
    clock: FixedClock

    def hold(
        self, account_id: str, at: datetime, *, until: datetime | None = None, reason: str = "Dispute DX-17"
    ) -> HoldChange:
        self.clock.set(at)
        return self.deps.hold_account(account_id, reason=reason, set_by="cli:alice", until=until)

    def release(self, account_id: str, at: datetime) -> HoldChange:
        self.clock.set(at)
        return self.deps.release_account(account_id, released_by="cli:bob")

    def subscription(self, account_id: str) -> Subscription:
        found = self.deps.accounts.load(account_id).get(Subscription, "sub-1")
        assert found is not None
        return found

    def due_at(self, account_id: str) -> list[datetime]:
        far = FAILED_AT + timedelta(days=3650)
        return [e.due_at for e in self.deps.due.due(far) if e.account_id == account_id]

    def live(self, start: datetime, end: datetime) -> list[tuple[str, K]]:
        happened = []
        for night in nightly_runs(start, end):
            self.clock.set(night)
            report = self.deps.run_retention(now=night, time_budget=timedelta(minutes=4))
            assert report.accounts_failed == 0
            happened += [(night.date().isoformat(), a.kind) for a in report.actions if a.kind is not K.SUPERSEDED]
        return happened


@pytest.fixture
def world() -> World:
    clock = FixedClock(FAILED_AT)
    settings = Settings(portal_base_url=PORTAL)
    return World(build_in_memory(settings, clock), settings, clock)


def test_a_hold_with_an_end_is_recorded_and_put_on_the_due_index_at_its_end(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    held_at = FAILED_AT + timedelta(days=2)
    until = held_at + timedelta(days=10)

    change = world.hold(account_id, held_at, until=until)

    assert change.outcome is HoldOutcome.SET
    stored = world.deps.accounts.load(account_id).account
    assert stored is not None
    assert stored.hold == change.hold
    assert [(r.action, r.at, r.by, r.reason, r.until) for r in world.deps.audit.holds(account_id)] == [
        (HoldAction.SET, held_at, "cli:alice", "Dispute DX-17", until)
    ]
    assert until in world.due_at(account_id)


def test_changing_and_releasing_add_one_audit_row_each_and_release_is_due_at_once(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    world.hold(account_id, FAILED_AT + timedelta(days=1))
    world.hold(account_id, FAILED_AT + timedelta(days=1))  # same terms: no row
    world.hold(account_id, FAILED_AT + timedelta(days=2), reason="Dispute DX-17, bank asked")
    released_at = FAILED_AT + timedelta(days=4)

    change = world.release(account_id, released_at)

    assert change.outcome is HoldOutcome.RELEASED
    assert [r.action for r in world.deps.audit.holds(account_id)] == [
        HoldAction.SET,
        HoldAction.CHANGED,
        HoldAction.RELEASED,
    ]
    assert released_at in world.due_at(account_id)
    assert world.subscription(account_id).deadline_shift == timedelta(days=3)


def test_releasing_an_account_that_is_not_held_answers_so_and_writes_nothing(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, schedule=False)  # type: ignore[arg-type]

    change = world.release(account_id, FAILED_AT)

    assert change.outcome is HoldOutcome.NOT_HELD
    assert world.deps.audit.holds(account_id) == []
    assert world.due_at(account_id) == []


def test_an_end_in_the_past_and_an_unknown_account_are_refused(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]

    with pytest.raises(InvalidHoldError):
        world.hold(account_id, FAILED_AT, until=FAILED_AT - timedelta(seconds=1))
    with pytest.raises(AccountNotFoundError):
        world.hold(new_account_id(), FAILED_AT)
    assert world.deps.audit.holds(account_id) == []


def test_a_hold_that_loses_a_race_is_decided_again_and_recorded_once(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    store = world.deps.accounts

    def someone_else_writes() -> None:
        partition = store.load(account_id)
        assert partition.account is not None
        locale = "nl-NL" if partition.account.locale == "en-US" else "en-US"
        partition.set_account(partition.account.model_copy(update={"locale": locale}))
        store.commit(partition)

    racing = RacingAccounts(store, someone_else_writes, races=2)

    change = hold_account(
        account_id,
        reason="Dispute",
        set_by="ops-7",
        until=None,
        accounts=racing,
        audit=world.deps.audit,
        due=world.deps.due,
        clock=world.clock,
    )
    world.clock.set(FAILED_AT + timedelta(hours=1))
    release = release_account(
        account_id, released_by="ops-7", accounts=racing, audit=world.deps.audit, due=world.deps.due, clock=world.clock
    )

    assert (change.outcome, release.outcome, racing.races) == (HoldOutcome.SET, HoldOutcome.RELEASED, 2)
    assert [r.action for r in world.deps.audit.holds(account_id)] == [HoldAction.SET, HoldAction.RELEASED]


def test_a_held_account_passes_its_cancellation_untouched_and_is_cancelled_as_late_as_it_was_held(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    held_at = datetime.fromisoformat("2027-01-20T09:00:00+00:00")  # after both reminders, before the warning
    before = world.live(FAILED_AT, held_at - timedelta(hours=1))
    world.hold(account_id, held_at)

    while_held = world.live(held_at, held_at + timedelta(days=20))
    world.release(account_id, held_at + timedelta(days=20))
    shift_at_release = world.subscription(account_id).deadline_shift
    after = world.live(held_at + timedelta(days=20), CANCELLATION + timedelta(days=25))

    assert [kind for _, kind in before] == [K.REMINDER, K.REMINDER]
    assert while_held == []
    assert shift_at_release == timedelta(days=20)
    assert after == [("2027-02-19", K.FINAL_NOTICE), ("2027-02-24", K.DISABLED)]
    assert world.subscription(account_id).state is SubscriptionState.DISABLED


def test_a_payment_while_held_still_brings_the_subscription_back(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    world.hold(account_id, FAILED_AT + timedelta(days=1))

    settle(world, account_id, FAILED_AT + timedelta(days=2))  # type: ignore[arg-type]

    assert world.subscription(account_id).state is SubscriptionState.ENABLED
    assert world.live(FAILED_AT + timedelta(days=2), CANCELLATION + timedelta(days=1)) == []

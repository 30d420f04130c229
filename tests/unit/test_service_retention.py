"""The retention run on the in-memory fakes: the whole timeline, repeats, crashes, races, budgets and dry runs."""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import ChargeStatus, Subscription
from shared.domain.retention_plan import RetentionActionKind
from shared.domain.settle_balance import PENDING_CHARGE_EXPIRY, PaymentChoice, settlement_id_for
from shared.domain.settlement import Settlement, SettlementStatus
from shared.services.retention import RetentionReport
from shared.settings import Settings
from shared.webhooks import VerifiedWebhook, WebhookDelivery, request_fingerprint
from tests.fakes import Fault, FaultyPort, RacingAccounts, build_in_memory
from tests.support.retention import (
    ADMIN_EMAIL,
    FAILED_AT,
    PORTAL,
    SUBSCRIPTION_NAME,
    new_account_id,
    nightly_runs,
    seed_past_due_account,
    settle,
)
from tests.support.settlement_data import settle_command, shared_card_account

K = RetentionActionKind
FIRST_REMINDER_NIGHT = datetime.fromisoformat("2027-01-12T02:00:00+00:00")
DISABLE_NIGHT = datetime.fromisoformat("2027-02-04T02:00:00+00:00")
DELETE_NIGHT = DISABLE_NIGHT + timedelta(days=90)


class SimulatedCrash(BaseException):
    """The process dies: not an Exception, so nothing on the way catches it."""


@dataclass
class World:
    """What tests/support/retention.py's seeding needs of a world (its deps and settings), on the fakes."""

    deps: Dependencies
    settings: Settings
    clock: FixedClock

    def run(self, at: datetime, *, deps: Dependencies | None = None, **options: object) -> RetentionReport:
        self.clock.set(at)
        budget = options.pop("budget", timedelta(minutes=4))
        return (deps or self.deps).run_retention(now=at, time_budget=budget, **options)  # type: ignore[arg-type]

    def subscription(self, account_id: str) -> Subscription:
        found = self.deps.accounts.load(account_id).get(Subscription, "sub-1")
        assert found is not None
        return found

    @property
    def sent(self) -> list[str]:
        return [email.subject for email in self.deps.email.sent]  # type: ignore[attr-defined]

    @property
    def event_types(self) -> list[str]:
        return [event.type for event in self.deps.events.events]  # type: ignore[attr-defined]

    def due_at(self, account_id: str, until: datetime) -> list[datetime]:
        return [entry.due_at for entry in self.deps.due.due(until) if entry.account_id == account_id]


@pytest.fixture
def world() -> World:
    clock = FixedClock(FAILED_AT)
    settings = Settings(portal_base_url=PORTAL)
    return World(build_in_memory(settings, clock), settings, clock)


def test_an_unpaid_subscription_goes_through_every_step_once_each_on_its_night(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]

    happened = []
    for night in nightly_runs(FAILED_AT, DELETE_NIGHT + timedelta(days=5)):
        report = world.run(night)
        assert report.accounts_failed == 0
        happened += [(night.date().isoformat(), a.kind, a.offset_days) for a in report.actions]

    assert happened == [
        ("2027-01-12", K.REMINDER, 7),
        ("2027-01-19", K.REMINDER, 14),
        ("2027-01-30", K.FINAL_NOTICE, 5),
        ("2027-02-04", K.DISABLED, 0),
        ("2027-04-05", K.DELETION_WARNING, 30),
        ("2027-04-28", K.DELETION_WARNING, 7),
        ("2027-05-04", K.DELETION_WARNING, 1),
        ("2027-05-05", K.DELETED, 0),
        ("2027-05-05", K.PURGED, 0),
    ]
    assert world.sent[0] == f"Payment reminder: {SUBSCRIPTION_NAME} will be cancelled on February 3, 2027"
    assert world.sent[-1] == "Subscription sub-1 and its data have been deleted"
    assert len(world.sent) == 8
    assert {email.to_address for email in world.deps.email.sent} == {ADMIN_EMAIL}  # type: ignore[attr-defined]
    assert world.event_types == ["subscription.disabled", "subscription.deleted"]
    (record,) = world.deps.audit.deletions(account_id)
    assert (record.subscription_id, record.disabled_at, record.deleted_at) == ("sub-1", DISABLE_NIGHT, DELETE_NIGHT)
    assert world.subscription(account_id).name == ""
    assert world.due_at(account_id, DELETE_NIGHT + timedelta(days=3650)) == []


def test_a_second_run_at_the_same_moment_does_nothing(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]

    first = world.run(DISABLE_NIGHT)
    second = world.run(DISABLE_NIGHT)

    assert [(a.kind, a.milestone) for a in first.actions] == [
        (K.SUPERSEDED, "reminder"),
        (K.SUPERSEDED, "reminder"),
        (K.SUPERSEDED, "warn"),
        (K.DISABLED, "disable"),
    ]
    assert (second.actions, second.entries_due) == ((), 0)
    assert len(world.sent) == 1
    assert world.event_types == ["subscription.disabled"]


def test_a_crash_after_the_commit_is_completed_by_the_next_run_without_a_second_email(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    crashing = FaultyPort(world.deps.due, Fault("remove", error=SimulatedCrash))

    with pytest.raises(SimulatedCrash):
        world.run(DISABLE_NIGHT, deps=dataclasses.replace(world.deps, due=crashing))

    assert world.subscription(account_id).state is SubscriptionState.DISABLED
    consumed = datetime.fromisoformat("2027-01-11T10:00:00+00:00")  # the first reminder's entry stayed
    assert world.due_at(account_id, DISABLE_NIGHT) == [consumed]

    again = world.run(DISABLE_NIGHT + timedelta(minutes=10))

    assert (again.actions, again.accounts_failed) == ((), 0)
    assert len(world.sent) == 1
    assert world.due_at(account_id, DISABLE_NIGHT + timedelta(days=61)) == [
        datetime.fromisoformat("2027-04-05T02:00:00+00:00")
    ]
    assert world.event_types == ["subscription.disabled"]


def test_a_crash_before_the_email_went_out_is_delivered_once_by_the_next_run(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    crashing = FaultyPort(world.deps.email, Fault("send", error=SimulatedCrash))

    with pytest.raises(SimulatedCrash):
        world.run(FIRST_REMINDER_NIGHT, deps=dataclasses.replace(world.deps, email=crashing))
    assert world.sent == []

    again = world.run(FIRST_REMINDER_NIGHT + timedelta(hours=1))

    assert (again.actions, again.emails_sent) == ((), 1)
    assert len(world.sent) == 1


def test_a_settlement_landing_between_the_read_and_the_commit_wins_and_is_left_alone(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]

    racing = RacingAccounts(
        world.deps.accounts,
        lambda: settle(world, account_id, DISABLE_NIGHT - timedelta(seconds=1)),  # type: ignore[arg-type]
    )
    report = world.run(DISABLE_NIGHT, deps=dataclasses.replace(world.deps, accounts=racing))

    assert racing.races == 1
    assert (report.actions, report.accounts_failed) == ((), 0)  # decided again on the fresh read: nothing to do
    subscription = world.subscription(account_id)
    assert subscription.state is SubscriptionState.ENABLED
    assert subscription.history[-1].reason == "balance_settled"
    assert world.sent == []
    assert world.event_types == []


def test_a_run_stops_when_its_time_budget_is_spent_and_the_next_run_continues(world: World) -> None:
    accounts = [new_account_id() for _ in range(5)]
    for account_id in accounts:
        seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    ticks = itertools.count()  # each look at the clock: one second later

    first = world.run(FIRST_REMINDER_NIGHT, budget=timedelta(seconds=2.5), monotonic=lambda: float(next(ticks)))
    second = world.run(FIRST_REMINDER_NIGHT + timedelta(minutes=1))

    assert (first.budget_exhausted, first.accounts_reviewed) == (True, 2)
    assert (second.budget_exhausted, second.accounts_reviewed) == (False, 3)
    assert sorted(a.account_id for r in (first, second) for a in r.actions) == sorted(accounts)
    assert len(world.sent) == 5


def test_a_dry_run_lists_what_would_happen_and_writes_nothing(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    world.run(DISABLE_NIGHT)
    before = world.deps.accounts.load(account_id)
    due_before = world.due_at(account_id, DELETE_NIGHT)

    report = world.run(DELETE_NIGHT, dry_run=True)

    assert [(a.kind, a.offset_days) for a in report.actions] == [
        (K.SUPERSEDED, 30),
        (K.SUPERSEDED, 7),
        (K.SUPERSEDED, 1),
        (K.DELETED, 0),
        (K.PURGED, 0),
    ]
    after = world.deps.accounts.load(account_id)
    assert (after.version, after.rows) == (before.version, before.rows)
    assert world.due_at(account_id, DELETE_NIGHT) == due_before
    assert world.deps.audit.deletions(account_id) == []
    assert len(world.sent) == 1


def test_an_account_that_fails_is_reported_and_stays_due_while_the_others_go_on(world: World) -> None:
    broken, healthy = new_account_id(), new_account_id()
    seed_past_due_account(world, broken)  # type: ignore[arg-type]
    seed_past_due_account(world, healthy, past_due_since=FAILED_AT + timedelta(hours=1))  # type: ignore[arg-type]
    # The oldest due account is read first; its read fails as an unreadable row would make it fail.
    unreadable = FaultyPort(world.deps.accounts, Fault("load", error=ValueError("unknown row kind")))

    report = world.run(FIRST_REMINDER_NIGHT, deps=dataclasses.replace(world.deps, accounts=unreadable))

    assert report.accounts_failed == 1
    assert {a.account_id for a in report.actions} == {healthy}
    assert world.due_at(broken, FIRST_REMINDER_NIGHT) != []
    assert world.due_at(healthy, FIRST_REMINDER_NIGHT) == []


def test_the_nightly_run_forgets_webhook_ids_older_than_the_replay_window(world: World) -> None:
    world.clock.set(FIRST_REMINDER_NIGHT - timedelta(days=2))
    old = VerifiedWebhook(id="msg_old", timestamp=world.clock.now())
    fingerprint = request_fingerprint("POST", "/api/accounts/acc-1/settlement", b"{}")
    world.deps.webhooks.remember(old, fingerprint)
    world.clock.set(FIRST_REMINDER_NIGHT - timedelta(hours=1))
    recent = VerifiedWebhook(id="msg_recent", timestamp=world.clock.now())
    world.deps.webhooks.remember(recent, fingerprint)

    report = world.run(FIRST_REMINDER_NIGHT)

    assert report.webhook_ids_purged == 1
    other_body = request_fingerprint("POST", "/api/accounts/acc-1/settlement", b"[]")
    assert world.deps.webhooks.remember(old, other_body) is WebhookDelivery.FIRST


def test_a_card_payment_whose_outcome_was_unknown_is_completed_by_the_next_run(world: World) -> None:
    account = shared_card_account().write(world.deps.accounts)  # type: ignore[arg-type]
    world.clock.set(datetime.fromisoformat("2026-11-30T09:00:00+00:00"))
    command = settle_command(account.id, "key-rt", payment=PaymentChoice(token="tok_timeout"))
    assert world.deps.settle_balance(command).status is SettlementStatus.PENDING

    report = world.run(world.clock.now() + PENDING_CHARGE_EXPIRY + timedelta(minutes=1))

    settlement = world.deps.accounts.load(account.id).get(Settlement, settlement_id_for(account.id, "key-rt"))
    assert settlement is not None
    assert settlement.status is SettlementStatus.SUCCEEDED
    assert report.accounts_failed == 0
    assert [c.status for c in world.deps.accounts.load(account.id).charges] == [ChargeStatus.PAID] * 2
    assert world.deps.settle_balance(command).status is SettlementStatus.SUCCEEDED  # the portal's retry: no charge
    assert len(world.deps.gateway.ledger()) == 1  # type: ignore[attr-defined]

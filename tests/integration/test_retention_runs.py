"""How retention runs behave as runs: repeated, overlapping, crashing, out of time, dry, and what they cost."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies
from shared.domain.email import OutgoingEmail, SendOutcome
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import ChargeStatus, DeclineReason
from shared.domain.outbox import NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.retention_plan import RetentionActionKind
from shared.services.ports import DueEntry
from shared.services.unit_of_work import with_fresh_partition
from shared.storage.layout import ACCOUNTS_TABLE, DUE_SHARDS
from shared.storage.webhook_ledger import TableWebhookLedger
from shared.webhooks import VerifiedWebhook, WebhookDelivery, request_fingerprint
from tests.support.retention import (
    FAILED_AT,
    SUBSCRIPTION_NAME,
    World,
    make_world,
    new_account_id,
    seed_past_due_account,
)

pytestmark = pytest.mark.azurite

K = RetentionActionKind
FIRST_REMINDER_NIGHT = datetime.fromisoformat("2027-01-12T02:00:00+00:00")
DISABLE_NIGHT = datetime.fromisoformat("2027-02-04T02:00:00+00:00")


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path) -> World:
    return make_world(azurite.connection_string, tmp_path)


class SimulatedCrash(BaseException):
    """The process dies: not an Exception, so nothing on the way catches it."""


class CrashingDueIndex:
    """Wraps the real due index: its first removal of an entry kills the process (after the account was committed)."""

    def __init__(self, deps: Dependencies) -> None:
        self._due = deps.due
        self.crashed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._due, name)

    def remove(self, entry: DueEntry) -> None:
        if not self.crashed:
            self.crashed = True
            raise SimulatedCrash
        self._due.remove(entry)


class CrashingSender:
    """Kills the process on its first email, after the state change was committed and before anything was sent."""

    def __init__(self) -> None:
        self.crashed = False

    def send(self, email: OutgoingEmail) -> SendOutcome:
        self.crashed = True
        raise SimulatedCrash


def test_a_second_run_at_the_same_moment_does_nothing(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)

    first = world.run(DISABLE_NIGHT)
    second = world.run(DISABLE_NIGHT)

    assert [(a.kind, a.milestone) for a in first.actions] == [
        (K.SUPERSEDED, "reminder"),
        (K.SUPERSEDED, "reminder"),
        (K.SUPERSEDED, "warn"),
        (K.DISABLED, "disable"),
    ]
    assert second.actions == ()
    assert second.entries_due == 0
    assert len(world.email.sent) == 1


def test_two_overlapping_runs_change_each_account_once_and_send_each_email_once(world: World) -> None:
    accounts = [new_account_id() for _ in range(8)]
    for account_id in accounts:
        seed_past_due_account(world, account_id)
    other_process = world.build()
    reports = []
    barrier = threading.Barrier(2)

    def run(deps: Dependencies) -> None:
        barrier.wait()
        reports.append(world.run(DISABLE_NIGHT, deps=deps))

    threads = [threading.Thread(target=run, args=(deps,)) for deps in (world.deps, other_process)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(a.account_id for r in reports for a in r.actions if a.kind is K.DISABLED) == sorted(accounts)
    assert sum(r.accounts_failed for r in reports) == 0
    for account_id in accounts:
        subscription = world.subscription(account_id)
        assert [t.to_state for t in subscription.history].count(SubscriptionState.DISABLED) == 1
    # Deliveries may overlap; the email's operation id makes the second attempt a no-op at the sender.
    assert len({email.operation_id for email in world.email.sent}) == len(accounts)
    assert len(world.email.eml_files) == len(accounts)
    assert len({event["id"] for event in world.lifecycle_events()}) == len(accounts)


def test_a_crash_after_the_commit_is_completed_by_the_next_run_without_a_second_email(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    crashing = CrashingDueIndex(world.deps)

    with pytest.raises(SimulatedCrash):
        world.run(DISABLE_NIGHT, deps=dataclasses.replace(world.deps, due=crashing))

    assert crashing.crashed
    assert world.subscription(account_id).state is SubscriptionState.DISABLED
    assert len(world.email.sent) == 1
    consumed = datetime.fromisoformat("2027-01-11T10:00:00+00:00")  # the first reminder's entry
    assert world.due_entries(account_id, DISABLE_NIGHT) == [consumed]

    again = world.run(DISABLE_NIGHT + timedelta(minutes=10))

    assert again.actions == ()
    assert again.accounts_failed == 0
    assert len(world.email.sent) == 1
    assert world.due_entries(account_id, DISABLE_NIGHT + timedelta(minutes=10)) == []
    assert world.due_entries(account_id, DISABLE_NIGHT + timedelta(days=61)) == [
        datetime.fromisoformat("2027-04-05T02:00:00+00:00")
    ]
    assert len(world.lifecycle_events()) == 1


def test_a_crash_before_the_email_went_out_is_delivered_once_by_the_next_run(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    sender = CrashingSender()

    with pytest.raises(SimulatedCrash):
        world.run(FIRST_REMINDER_NIGHT, deps=world.build(email=sender))

    assert sender.crashed
    (pending,) = world.notifications(account_id)
    assert pending.status is NotificationStatus.PENDING

    again = world.run(FIRST_REMINDER_NIGHT + timedelta(hours=1))

    assert again.actions == ()
    assert again.emails_sent == 1
    assert [n.status for n in world.notifications(account_id)] == [NotificationStatus.SENT]
    assert len(world.email.sent) == 1
    world.run(FIRST_REMINDER_NIGHT + timedelta(hours=2))
    assert len(world.email.sent) == 1


def test_a_run_reads_only_the_due_accounts_whatever_else_is_stored(world: World) -> None:
    due_accounts = [new_account_id() for _ in range(3)]
    for account_id in due_accounts:
        seed_past_due_account(world, account_id)
    for n in range(297):
        # Past due too, but failed later: their next milestone is a week after the run.
        seed_past_due_account(world, new_account_id(), past_due_since=FAILED_AT + timedelta(days=n % 30 + 2))
    world.deps.due.shards_to_sweep()  # the shard-count row exists from the first firing on
    world.counter.reset()

    report = world.run(FIRST_REMINDER_NIGHT)

    requests = world.counter.reset()
    assert sorted(a.account_id for a in report.actions) == sorted(due_accounts)
    assert report.entries_due == 3
    # Per due account: read, schedule the next review, commit, index the sent email's message id, record the sent
    # email, remove the entry; once per run: the shard count, one query per shard, one query for expired webhook ids
    # (none here).
    assert requests == 1 + DUE_SHARDS + 3 * 6 + 1


def test_a_subscription_paid_but_still_disabled_is_re_enabled_and_reported(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    world.run(DISABLE_NIGHT)

    def pay_without_re_enabling(partition: AccountPartition) -> None:
        partition.put(*(c.mark_paid("stl-lost", DISABLE_NIGHT) for c in partition.charges))

    with_fresh_partition(world.deps.accounts, account_id, pay_without_re_enabling)
    world.deps.due.schedule(account_id, DISABLE_NIGHT + timedelta(minutes=5))

    report = world.run(DISABLE_NIGHT + timedelta(hours=1))

    assert [(a.subscription_id, a.kind) for a in report.actions] == [("sub-1", K.REENABLED)]
    subscription = world.subscription(account_id)
    assert subscription.state is SubscriptionState.ENABLED
    assert subscription.history[-1].reason == "self_healed"
    assert world.email.sent[-1].subject == f"{SUBSCRIPTION_NAME} is active again"
    assert [e["type"] for e in world.lifecycle_events()] == ["subscription.disabled", "subscription.enabled"]
    assert [a.kind for a in world.load(account_id).alerts if a.is_open] == []
    assert [c.status for c in world.load(account_id).charges] == [ChargeStatus.PAID]


def test_a_run_stops_when_its_time_budget_is_spent_and_the_next_run_continues(world: World) -> None:
    accounts = [new_account_id() for _ in range(5)]
    for account_id in accounts:
        seed_past_due_account(world, account_id)
    ticks = itertools.count()  # each look at the clock: one second later

    first = world.run(FIRST_REMINDER_NIGHT, budget=timedelta(seconds=2.5), monotonic=lambda: float(next(ticks)))

    assert first.budget_exhausted
    assert first.accounts_reviewed == 2
    assert len(world.email.sent) == 2
    second = world.run(FIRST_REMINDER_NIGHT + timedelta(minutes=1))
    assert not second.budget_exhausted
    assert second.accounts_reviewed == 3
    assert sorted(a.account_id for r in (first, second) for a in r.actions) == sorted(accounts)


def test_a_dry_run_lists_what_would_happen_and_writes_nothing(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)
    world.run(DISABLE_NIGHT)
    before = world.load(account_id)
    deletion_night = DISABLE_NIGHT + timedelta(days=90)
    due_before = world.due_entries(account_id, deletion_night)

    report = world.run(deletion_night, dry_run=True)

    assert [(a.kind, a.offset_days) for a in report.actions] == [
        (K.SUPERSEDED, 30),
        (K.SUPERSEDED, 7),
        (K.SUPERSEDED, 1),
        (K.DELETED, 0),
        (K.PURGED, 0),
    ]
    after = world.load(account_id)
    assert (after.version, after.rows) == (before.version, before.rows)
    assert world.due_entries(account_id, deletion_night) == due_before
    assert len(world.email.sent) == 1


def test_a_late_first_run_sends_only_the_latest_reminder(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id)

    report = world.run(datetime.fromisoformat("2027-01-20T02:00:00+00:00"))

    assert [(a.kind, a.offset_days) for a in report.actions] == [(K.SUPERSEDED, 7), (K.REMINDER, 14)]
    assert len(world.email.sent) == 1


def test_a_hard_decline_asks_to_update_the_payment_method(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, decline=DeclineReason.EXPIRED_CARD)

    world.run(FIRST_REMINDER_NIGHT)

    (email,) = world.email.sent
    assert email.subject == f"Action needed: update your payment method for {SUBSCRIPTION_NAME}"
    assert "Visa •••• 4242" in email.plain_text
    assert "update your payment method" in email.html


def test_a_dutch_account_gets_dutch_emails_with_dutch_dates_and_amounts(world: World) -> None:
    account_id = new_account_id()
    seed_past_due_account(world, account_id, locale="nl-NL")

    world.run(DISABLE_NIGHT)

    (email,) = world.email.sent
    assert email.subject == f"{SUBSCRIPTION_NAME} is uitgeschakeld; de gegevens worden op 5 mei 2027 verwijderd"
    assert "€\u00a01.234,50" in email.plain_text
    assert 'lang="nl-NL"' in email.html


def test_an_account_that_fails_is_reported_and_stays_due_while_the_others_go_on(world: World) -> None:
    broken, healthy = new_account_id(), new_account_id()
    for account_id in (broken, healthy):
        seed_past_due_account(world, account_id)

    # A row nobody can read (written by hand, or by a future version) makes the whole account fail to load.
    world.deps.tables.table(ACCOUNTS_TABLE).upsert_entity(
        {"PartitionKey": broken, "RowKey": "sub:corrupt", "Data": "{not json"}
    )

    report = world.run(FIRST_REMINDER_NIGHT)

    assert report.accounts_failed == 1
    assert {a.account_id for a in report.actions} == {healthy}
    assert world.due_entries(broken, FIRST_REMINDER_NIGHT) != []
    assert world.due_entries(healthy, FIRST_REMINDER_NIGHT) == []


def test_the_nightly_run_forgets_webhook_ids_older_than_the_replay_window(world: World) -> None:
    ledger = TableWebhookLedger(world.deps.tables, clock=world.clock)
    world.clock.set(FIRST_REMINDER_NIGHT - timedelta(days=2))
    old = VerifiedWebhook(id=f"msg_{new_account_id()}", timestamp=world.clock.now())
    ledger.remember(old, request_fingerprint("POST", "/api/accounts/acc-1/settlement", b"{}"))

    report = world.run(FIRST_REMINDER_NIGHT)

    assert report.webhook_ids_purged >= 1
    other_body = request_fingerprint("POST", "/api/accounts/acc-1/settlement", b"[]")
    assert ledger.remember(old, other_body) is WebhookDelivery.FIRST  # forgotten: no longer a replay

"""The queue-driven retention pass on the in-memory fakes: the timer hands out sweeps, sweeps hand out batches,
batches review; duplicates, doubled firings, crashes, failing accounts and the backlog."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest

from functions.retention_worker.handler import handle_work, max_dequeue_count
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.retention_work import AccountReview, decode_work
from shared.settings import Settings
from shared.storage.layout import DUE_SHARDS
from tests.fakes import Fault, FaultyPort, build_in_memory
from tests.fakes.memory import MemoryWorkQueue
from tests.support.retention import FAILED_AT, PORTAL, new_account_id, seed_past_due_account
from tests.unit.test_service_retention import SimulatedCrash
from tests.unit.test_service_retention import World as RetentionWorld

FIRST_REMINDER = FAILED_AT + timedelta(days=7, minutes=1)
CANCELLATION = FAILED_AT + timedelta(days=30, minutes=1)


@dataclass
class World(RetentionWorld):
    """The retention tests' world, with the work queue run as the host runs it."""

    @property
    def queue(self) -> MemoryWorkQueue:
        assert isinstance(self.deps.work_queue, MemoryWorkQueue)
        return self.deps.work_queue

    def fire(self, at: datetime, *, deps: Dependencies | None = None) -> list[str]:
        """One timer firing at `at` and every item it leads to, run as the host runs them; the kinds run."""
        self.clock.set(at)
        (deps or self.deps).start_retention_pass(at)
        return self.drain(deps=deps)

    def drain(self, *, deps: Dependencies | None = None) -> list[str]:
        kinds: list[str] = []
        while bodies := self.queue.take():
            for body in bodies:
                kinds.append(decode_work(body).kind)
                handle_work(deps or self.deps, body, message_id=None, dequeue_count=1)
        return kinds


@pytest.fixture
def world() -> World:
    clock = FixedClock(FAILED_AT)
    settings = Settings(portal_base_url=PORTAL, retention_batch_size=3)
    return World(build_in_memory(settings, clock), settings, clock)


def seed(world: World, count: int) -> list[str]:
    accounts = [new_account_id() for _ in range(count)]
    for account_id in accounts:
        seed_past_due_account(world, account_id)  # type: ignore[arg-type]
    return accounts


def test_the_timer_sends_one_sweep_per_shard_whatever_is_due(world: World) -> None:
    seed(world, 10)

    started = world.deps.start_retention_pass(FIRST_REMINDER)

    kinds = [decode_work(body).kind for body in world.queue.bodies]
    assert (started.shards, started.items_sent) == (DUE_SHARDS, DUE_SHARDS + 1)
    assert sorted(kinds) == sorted(["sweep"] * DUE_SHARDS + ["housekeeping"])


def test_a_pass_reviews_every_due_account_once_in_batches(world: World) -> None:
    accounts = seed(world, 10)

    kinds = world.fire(FIRST_REMINDER)

    # Ten accounts over the shards in batches of at most three accounts each.
    assert kinds.count("review") >= 4
    assert len(world.sent) == 10
    reminders = [[n.template for n in world.deps.accounts.load(a).notifications] for a in accounts]
    assert reminders == [["retention_reminder"]] * 10
    assert len(world.deps.due) == len(accounts)  # each account's next milestone, nothing else
    assert not list(world.deps.due.due(FIRST_REMINDER))


def test_every_work_item_delivered_twice_and_a_doubled_firing_change_nothing_twice(world: World) -> None:
    seed(world, 7)
    world.clock.set(CANCELLATION)
    world.deps.start_retention_pass(CANCELLATION)
    world.deps.start_retention_pass(CANCELLATION)  # the same occurrence on a second instance

    kinds: list[str] = []
    while bodies := world.queue.take():
        for body in bodies + bodies:  # every item, sweeps and reviews alike, delivered twice
            kinds.append(decode_work(body).kind)
            handle_work(world.deps, body, message_id=None, dequeue_count=1)

    assert kinds.count("review") > 7
    assert len(world.sent) == 7
    assert world.event_types.count("subscription.disabled") == 7


def test_a_crash_after_the_commit_and_before_the_delivery_is_finished_by_a_later_firing(world: World) -> None:
    (account_id,) = seed(world, 1)
    crashing = dataclasses.replace(world.deps, email=FaultyPort(world.deps.email, Fault("send", error=SimulatedCrash)))

    world.clock.set(CANCELLATION)
    world.deps.start_retention_pass(CANCELLATION)
    with pytest.raises(SimulatedCrash):
        world.drain(deps=crashing)
    world.queue.take()  # the crashed instance's messages: the host would redeliver them; drop them to be strict

    assert world.subscription(account_id).state is SubscriptionState.DISABLED
    assert world.sent == []
    assert list(world.deps.due.due(CANCELLATION))  # the consumed entry is still there

    world.fire(CANCELLATION + timedelta(minutes=15))

    assert len(world.sent) == 1
    assert world.event_types.count("subscription.disabled") == 1
    assert not list(world.deps.due.due(CANCELLATION + timedelta(minutes=15)))


def test_one_failing_account_goes_on_alone_and_is_set_aside_after_the_last_attempt(world: World) -> None:
    accounts = seed(world, 3)
    broken = accounts[1]
    original_load = world.deps.accounts.load

    def load(account_id: str) -> object:
        if account_id == broken:
            raise ValueError("corrupt row")
        return original_load(account_id)

    failing = dataclasses.replace(world.deps, accounts=_Loading(world.deps.accounts, load))
    world.clock.set(FIRST_REMINDER)
    failing.start_retention_pass(FIRST_REMINDER)
    attempts: dict[bytes, int] = {}

    def attempt(body: bytes) -> int:
        attempts[body] = attempts.get(body, 0) + 1
        return attempts[body]

    while bodies := world.queue.take():
        for body in bodies:
            try:
                handle_work(failing, body, message_id=None, dequeue_count=attempt(body))
            except Exception:
                world.queue.send(body)  # the host makes it visible again

    single = [body for body in attempts if decode_work(body).kind == "review" and broken in body.decode()]
    alone = [body for body in single if len(AccountReview.model_validate_json(body).account_ids) == 1]
    assert len(alone) == 1
    assert attempts[alone[0]] == max_dequeue_count()
    assert len(world.sent) == 2
    (rejection,) = world.deps.list_rejections()
    assert rejection.queue == "retention-work"
    assert broken in rejection.reason
    (waiting,) = list(world.deps.due.due(FIRST_REMINDER))
    assert (waiting.account_id, waiting.set_aside) == (broken, rejection.id)

    # A later firing passes it by; once re-submitted (the account fixed), it is reviewed and consumed.
    assert "review" not in world.fire(FIRST_REMINDER + timedelta(minutes=15))
    world.deps.resubmit_rejection(rejection.id, world.queue.send)
    world.drain()
    assert len(world.sent) == 3
    assert not list(world.deps.due.due(FIRST_REMINDER + timedelta(minutes=15)))


@dataclass
class _Loading:
    inner: object
    load: Callable[[str], object]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_the_backlog_shows_the_oldest_entry_its_age_and_the_lag_of_the_latest_reviews(world: World) -> None:
    seed(world, 4)
    late = FIRST_REMINDER + timedelta(hours=3)

    before = world.deps.retention_backlog(late)
    world.fire(late)
    after = world.deps.retention_backlog(late)

    assert before.entries_due == 4
    assert before.oldest_due_at is not None
    assert before.oldest_age == late - before.oldest_due_at
    assert before.by_age["1 h - 24 h"] == 4
    assert after.entries_due == 0
    assert after.shards
    assert all(p.max_lag_seconds >= 3 * 3600 for p in after.shards)


def test_storage_trouble_on_the_last_attempt_is_recorded_but_the_accounts_are_handed_out_again(world: World) -> None:
    accounts = seed(world, 2)
    world.clock.set(FIRST_REMINDER)
    world.deps.start_retention_pass(FIRST_REMINDER)
    unavailable = dataclasses.replace(
        world.deps,
        accounts=FaultyPort(world.deps.accounts, *(Fault("load", call=n) for n in range(1, 50))),
    )
    last_attempt = max_dequeue_count()

    reviews = 0
    while bodies := world.queue.take():
        for body in bodies:
            kind = decode_work(body).kind
            reviews += kind == "review"
            deps = unavailable if kind == "review" else world.deps
            handle_work(deps, body, message_id=None, dequeue_count=last_attempt)

    rejections = world.deps.list_rejections()
    assert len(rejections) == reviews > 0  # one per review item, visible
    assert all(r.reason.startswith(f"failed {last_attempt} attempts: TransientStorageError") for r in rejections)
    assert [e.set_aside for e in world.deps.due.due(FIRST_REMINDER)] == [None, None]  # not passed by
    assert world.sent == []

    world.fire(FIRST_REMINDER + timedelta(minutes=15))

    assert len(world.sent) == len(accounts)
    assert not list(world.deps.due.due(FIRST_REMINDER + timedelta(minutes=15)))

"""Delivering an account's outbox on the in-memory fakes: retries, set-aside emails, events, a lost race."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.email import SendOutcome
from shared.domain.model import Account, Alert, AlertKind
from shared.domain.outbox import LifecycleEvent, Notification, NotificationStatus
from shared.domain.partition import AccountPartition
from shared.services.delivery import RECOVERY_DELAY
from shared.services.unit_of_work import with_fresh_partition
from shared.settings import Settings
from tests.fakes import Fault, FaultyPort, RacingAccounts, build_in_memory

NOW = datetime(2026, 11, 24, 10, tzinfo=UTC)
ACCOUNT = "acc-1"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(clock: FixedClock) -> Dependencies:
    return build_in_memory(Settings(), clock)


def notification(notification_id: str, template: str = "_smoke") -> Notification:
    return Notification(
        id=notification_id,
        template=template,
        locale="en-US",
        to_address="billing@contoso.example",
        context={"name": "Ada", "note": "hello"},
        created_at=NOW,
        next_attempt_at=NOW,
    )


def seed(deps: Dependencies, *rows: Notification | LifecycleEvent) -> None:
    partition = deps.accounts.load(ACCOUNT)
    partition.set_account(
        Account(
            id=ACCOUNT,
            admin_principal_id="u",
            notification_email="billing@contoso.example",
            locale="en-US",
            currency="EUR",
        )
    )
    partition.put(*rows)
    deps.accounts.commit(partition)


def stored(deps: Dependencies, notification_id: str) -> Notification:
    found = deps.accounts.load(ACCOUNT).get(Notification, notification_id)
    assert found is not None
    return found


def test_a_throttled_email_stays_pending_goes_on_the_due_index_and_is_sent_once_later(
    deps: Dependencies, clock: FixedClock
) -> None:
    seed(deps, notification("n-1"))
    deps.email.answer_next(SendOutcome.retry("429", retry_after_seconds=120))  # type: ignore[attr-defined]

    first = deps.deliver(ACCOUNT)

    pending = stored(deps, "n-1")
    assert (first.retrying, pending.status, pending.attempts) == (["n-1"], NotificationStatus.PENDING, 1)
    assert pending.next_attempt_at == NOW + timedelta(seconds=120)
    assert [e.due_at for e in deps.due.due(NOW + timedelta(days=1))] == [NOW + timedelta(seconds=120)]
    assert deps.deliver(ACCOUNT).sent == []  # not due yet

    clock.advance(timedelta(minutes=2))
    second, third = deps.deliver(ACCOUNT), deps.deliver(ACCOUNT)

    assert (second.sent, third.sent, stored(deps, "n-1").status) == (["n-1"], [], NotificationStatus.SENT)
    attempts = deps.email.attempts  # type: ignore[attr-defined]
    assert len(attempts) == 2
    assert len({email.operation_id for email in attempts}) == 1  # the retry carried the same operation id
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_an_email_that_cannot_be_rendered_is_set_aside_and_the_others_still_go(deps: Dependencies) -> None:
    seed(deps, notification("broken", template="no_such_template"), notification("fine"))

    report = deps.deliver(ACCOUNT)

    broken = stored(deps, "broken")
    assert (report.failed, report.sent, broken.status) == (["broken"], ["fine"], NotificationStatus.FAILED)
    assert broken.last_error is not None
    assert broken.last_error.startswith("rendering")


def test_pending_lifecycle_events_are_published_once_and_then_removed(deps: Dependencies) -> None:
    event = LifecycleEvent(id="sub-a-disabled-1", type="subscription.disabled", subject="sub-a", time=NOW, data={})
    seed(deps, event)

    report = deps.deliver(ACCOUNT)
    again = deps.deliver(ACCOUNT)

    assert (report.published, again.published) == (["sub-a-disabled-1"], [])
    (message,) = deps.events.cloudevents  # type: ignore[attr-defined]
    assert (message["id"], message["type"], message["specversion"], message["source"]) == (
        "sub-a-disabled-1",
        "subscription.disabled",
        "1.0",
        "/pastdue",
    )
    assert deps.accounts.load(ACCOUNT).pending_events == []


def test_a_delivery_record_that_loses_its_race_is_recorded_again_on_a_fresh_read(deps: Dependencies) -> None:
    seed(deps, notification("n-1"))

    def add_alert(partition: AccountPartition) -> None:
        partition.put(Alert(id="alert-1", kind=AlertKind.REMINDER, created_at=NOW))

    racing = RacingAccounts(deps.accounts, lambda: with_fresh_partition(deps.accounts, ACCOUNT, add_alert))
    report = dataclasses.replace(deps, accounts=racing).deliver(ACCOUNT)

    partition = deps.accounts.load(ACCOUNT)
    assert racing.races == 1
    assert report.sent == ["n-1"]
    assert stored(deps, "n-1").status is NotificationStatus.SENT
    assert [a.id for a in partition.alerts] == ["alert-1"]
    assert len(deps.email.sent) == 1  # type: ignore[attr-defined]


def test_the_in_memory_build_binds_every_use_case_to_fakes_and_has_no_tables() -> None:
    deps = build_in_memory()

    assert deps.storage is None
    with pytest.raises(RuntimeError, match="not backed by Table Storage"):
        _ = deps.tables
    ports = [
        *(deps.accounts, deps.due, deps.audit, deps.webhooks, deps.rejections, deps.gateway, deps.email, deps.events),
        deps.test_clock_store,
    ]
    assert all(type(port).__module__ == "tests.fakes.memory" for port in ports)
    assert deps.outbox.store is deps.accounts
    assert deps.retention.payments.gateway is deps.gateway


def test_a_publisher_that_fails_keeps_the_events_pending_records_the_emails_and_tries_again_later(
    deps: Dependencies,
) -> None:
    event = LifecycleEvent(id="sub-a-disabled-1", type="subscription.disabled", subject="sub-a", time=NOW, data={})
    seed(deps, notification("n-1"), event)
    failing = dataclasses.replace(deps, events=FaultyPort(deps.events, Fault("publish_batch")))

    report = failing.deliver(ACCOUNT)

    assert (report.sent, report.published, report.unpublished) == (["n-1"], [], ["sub-a-disabled-1"])
    partition = deps.accounts.load(ACCOUNT)
    assert stored(deps, "n-1").status is NotificationStatus.SENT
    assert [e.id for e in partition.pending_events] == ["sub-a-disabled-1"]
    retries = [e.due_at for e in deps.due.due(NOW + timedelta(days=1)) if e.account_id == ACCOUNT]
    assert retries == [NOW + RECOVERY_DELAY]

    later = deps.deliver(ACCOUNT)

    assert (later.published, later.unpublished) == (["sub-a-disabled-1"], [])
    assert deps.accounts.load(ACCOUNT).pending_events == []


def oversized_event() -> LifecycleEvent:
    """More than a queue message can hold (a queue message is 64 KiB after base64)."""
    padding = {"x": "y" * 70_000}
    return LifecycleEvent(id="le-huge", type="payment_method.replaced", subject="pm", time=NOW, data=padding)


def test_an_event_no_queue_message_can_hold_stays_pending_and_the_others_go_out(deps: Dependencies) -> None:
    huge = oversized_event()
    small = LifecycleEvent(id="le-small", type="subscription.disabled", subject="sub-a", time=NOW, data={})
    seed(deps, huge, small)

    report = deps.deliver(ACCOUNT)

    assert (report.published, report.unpublished) == (["le-small"], ["le-huge"])
    assert [e.id for e in deps.accounts.load(ACCOUNT).pending_events] == ["le-huge"]
    assert [e["id"] for e in deps.events.cloudevents] == ["le-small"]  # type: ignore[attr-defined]


def test_the_retry_of_an_unpublished_event_backs_off_with_its_age(deps: Dependencies, clock: FixedClock) -> None:
    huge = oversized_event()
    seed(deps, huge)
    clock.advance(timedelta(hours=2))

    deps.deliver(ACCOUNT)
    clock.advance(timedelta(days=2))
    deps.deliver(ACCOUNT)

    due = sorted(e.due_at for e in deps.due.due(NOW + timedelta(days=30)) if e.account_id == ACCOUNT)
    assert due == [NOW + timedelta(hours=4), NOW + timedelta(days=2, hours=8)]

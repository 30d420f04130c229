"""Automatic retries through the functions: the payment.failed queue function, then, with TEST_CLOCK_ENABLED, the
test clock moved, the timer function fired and the work queue drained through the real worker function, every
function wired by bootstrap from the app settings, on Azurite."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage
from azure.functions.timer import TimerRequest

from devhost.azurite import AzuriteProcess
from functions.payment_failed_queue.handler import payment_failed
from functions.retention_timer.handler import retention
from shared.bootstrap import Dependencies, dependencies
from shared.domain.lifecycle import SubscriptionState
from shared.domain.money import Money
from shared.domain.payment_retry import RetryOutcome, retry_attempts
from shared.domain.payments import ChargeOutcome, ChargeResult
from shared.settings import retention_policy
from shared.storage.layout import GATEWAY_PARTITION, GATEWAY_TABLE
from tests.support.lifecycle_events import events_of, lifecycle_messages
from tests.support.payment_events import body_of, eml_files, payment_failed_document, read_eml
from tests.support.retention import clear_due_index
from tests.support.work_queue import clear_work_queues, drain

pytestmark = pytest.mark.azurite

OWED = Money.parse("49.95", "EUR")  # the one unpaid charge (sub-a) of the example event


@pytest.fixture
def lifecycle_queue() -> str:
    return f"lifecycle-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "app-outbox"


@pytest.fixture
def app_settings(
    azurite: AzuriteProcess, outbox_dir: Path, monkeypatch: pytest.MonkeyPatch, lifecycle_queue: str
) -> Iterator[None]:
    """A worker's app settings with the test clock on, on the test's Azurite; the clock starts at real time."""
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("OUTBOX_DIR", str(outbox_dir))
    monkeypatch.setenv("LIFECYCLE_QUEUE", lifecycle_queue)
    monkeypatch.setenv("TEST_CLOCK_ENABLED", "true")
    monkeypatch.delenv("ACS_CONNECTION_STRING", raising=False)
    monkeypatch.delenv("DUNNING_POLICIES", raising=False)
    dependencies.cache_clear()
    dependencies().reset_test_clock()
    clear_due_index(dependencies())
    clear_work_queues(azurite.connection_string)
    yield
    dependencies().reset_test_clock()
    dependencies.cache_clear()


@pytest.fixture
def account_id() -> str:
    return f"acc-{uuid.uuid4().hex[:12]}"


def fail_payment(account_id: str, token: str, reason: str) -> None:
    """The billing engine's charge declines in the sandbox, then its payment.failed arrives on the queue."""
    engine = dependencies().gateway.charge(OWED, token, f"engine-{account_id}", account_id=account_id)
    assert (engine.outcome, engine.reason) == (ChargeOutcome.DECLINED, reason)
    document = payment_failed_document(account_id, locale="en-US", reason=reason)
    document["data"]["paymentMethod"]["gatewayToken"] = token
    message = QueueMessage(id=str(uuid.uuid4()), body=body_of(document), dequeue_count=1, pop_receipt="receipt")
    payment_failed(message)


def advance_test_clock(by: timedelta) -> None:
    dependencies().advance_test_clock(by)
    # The next invocation runs on a fresh instance, which reads the moved clock at once (a living one within
    # TEST_CLOCK_REFRESH).
    dependencies.cache_clear()


def fire_timer_and_drain(connection_string: str) -> None:
    retention(TimerRequest(past_due=False))
    drained = drain(connection_string)
    assert drained.failures == 0


def charges_of(account_id: str) -> list[ChargeResult]:
    """The sandbox gateway's ledger rows for this account (the billing engine's own charge included)."""
    ledger = dependencies().tables.table(GATEWAY_TABLE)
    rows = ledger.query_entities(
        "PartitionKey eq @pk and AccountId eq @account", parameters={"pk": GATEWAY_PARTITION, "account": account_id}
    )
    return [ChargeResult.model_validate_json(row["Result"]) for row in rows]


def states(deps: Dependencies, account_id: str) -> dict[str, SubscriptionState]:
    return {s.id: s.state for s in deps.accounts.load(account_id).subscriptions}


def subjects(outbox_dir: Path) -> list[str]:
    return [str(read_eml(path)["Subject"]) for path in eml_files(outbox_dir)]


def lifecycle_events(connection_string: str, queue: str, account_id: str) -> list[dict[str, Any]]:
    return [e for e in events_of(lifecycle_messages(connection_string, queue)) if account_id in e.get("subject", "")]


@pytest.mark.usefixtures("app_settings")
def test_a_card_that_recovers_is_collected_by_the_timer_and_worker_functions_once(
    azurite: AzuriteProcess, account_id: str, outbox_dir: Path, lifecycle_queue: str
) -> None:
    # GIVEN a soft decline whose event names the card's gateway token
    fail_payment(account_id, "tok_recovers_on_retry", "insufficient_funds")
    fire_timer_and_drain(azurite.connection_string)  # day 0: no retry is due yet
    assert states(dependencies(), account_id)["sub-a"] is SubscriptionState.PAST_DUE
    assert [c.outcome for c in charges_of(account_id)] == [ChargeOutcome.DECLINED]
    first_retry_day = retention_policy(dependencies().settings).retry_days[0]

    # WHEN the test clock passes the first retry day by a day and the timer fires
    advance_test_clock(timedelta(days=first_retry_day + 1))
    fire_timer_and_drain(azurite.connection_string)

    # THEN one retry collected the balance: one successful charge, subscriptions enabled, a receipt, an event
    deps = dependencies()
    partition = deps.accounts.load(account_id)
    (attempt,) = retry_attempts(partition)
    assert (attempt.attempt, attempt.outcome, attempt.amount) == (1, RetryOutcome.APPROVED, OWED)
    assert states(deps, account_id) == {"sub-a": SubscriptionState.ENABLED, "sub-b": SubscriptionState.ENABLED}
    succeeded = [c for c in charges_of(account_id) if c.outcome is ChargeOutcome.SUCCEEDED]
    assert [(c.idempotency_key, c.amount) for c in succeeded] == [(attempt.settlement_id, OWED)]
    receipts = [s for s in subjects(outbox_dir) if "collected automatically" in s]
    assert receipts == ["Payment collected automatically: €49.95; your subscriptions are active again"]
    events = lifecycle_events(azurite.connection_string, lifecycle_queue, account_id)
    assert [e["type"] for e in events].count("subscription.enabled") == 1
    (enabled,) = [e for e in events if e["type"] == "subscription.enabled"]
    assert "sub-a" in enabled["subject"]

    # AND a second firing changes nothing
    ledger, emails = charges_of(account_id), eml_files(outbox_dir)
    fire_timer_and_drain(azurite.connection_string)

    again = dependencies()
    assert charges_of(account_id) == ledger
    assert eml_files(outbox_dir) == emails
    assert retry_attempts(again.accounts.load(account_id)) == [attempt]
    assert lifecycle_events(azurite.connection_string, lifecycle_queue, account_id) == events
    assert states(again, account_id) == {"sub-a": SubscriptionState.ENABLED, "sub-b": SubscriptionState.ENABLED}


@pytest.mark.usefixtures("app_settings")
def test_a_hard_declined_card_is_never_charged_again_and_the_subscription_is_disabled_at_the_cancellation(
    azurite: AzuriteProcess, account_id: str, lifecycle_queue: str
) -> None:
    # GIVEN a hard decline whose event names the card's gateway token
    fail_payment(account_id, "tok_expired_card", "expired_card")
    policy = retention_policy(dependencies().settings)
    cancellation_day = policy.grace_period_days
    # Every day the timeline or the retry schedule could act on, up to and past the cancellation.
    days = sorted(
        {*policy.retry_days, *policy.reminder_days, cancellation_day - policy.warn_days_before_cancellation}
        | {cancellation_day - 1, cancellation_day, cancellation_day + 1}
    )
    walked = 0
    for day in days:
        # WHEN the test clock passes each of them (by an hour) and the timer fires
        advance_test_clock(timedelta(days=day - walked, hours=1 if walked == 0 else 0))
        walked = day
        fire_timer_and_drain(azurite.connection_string)

        # THEN the card is never charged after the failure, and the subscription is disabled at the cancellation
        assert [c.idempotency_key for c in charges_of(account_id)] == [f"engine-{account_id}"], f"day {day}"
        expected = SubscriptionState.DISABLED if day >= cancellation_day else SubscriptionState.PAST_DUE
        if cancellation_day - policy.warn_days_before_cancellation <= day < cancellation_day:
            expected = SubscriptionState.WARNED
        assert states(dependencies(), account_id)["sub-a"] is expected, f"day {day}"

    assert retry_attempts(dependencies().accounts.load(account_id)) == []
    events = [e["type"] for e in lifecycle_events(azurite.connection_string, lifecycle_queue, account_id)]
    assert "subscription.disabled" in events

"""Dunning policies per account on Azurite: the events choose the policy, the retention run and the dates follow it.

Accounts arrive through the queue function as the billing engine sends them; the timer's work runs at chosen moments
on a fixed clock, as in the other retention tests.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from devhost.azurite import AzuriteProcess
from functions.payment_failed_queue import handler
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Subscription
from shared.domain.retention_plan import RetentionActionKind
from tests.support.payment_events import body_of, payment_failed_document
from tests.support.retention import FAILED_AT, World, make_world, new_account_id, nightly_runs

pytestmark = pytest.mark.azurite

K = RetentionActionKind
ADMIN = "user-7"  # the admin of payment_failed_document's account
GOLD_REMINDER_DAYS = [7, 14, 40]
GOLD = {
    "gracePeriodDays": 60,
    "reminderDays": GOLD_REMINDER_DAYS,
    "warnDaysBeforeCancellation": 5,
    "retentionDays": 120,
}
# FAILED_AT is 10:00 UTC; each milestone is acted on by the 02:00 run of the night after it.
NIGHT_AFTER_DAY_30 = datetime.fromisoformat("2027-02-04T02:00:00+00:00")
NIGHT_AFTER_DAY_60 = datetime.fromisoformat("2027-03-06T02:00:00+00:00")


@pytest.fixture
def world(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    policies = tmp_path / "dunning-policies.json"
    policies.write_text(json.dumps({"policies": {"gold": GOLD}}), encoding="utf-8")
    built = make_world(azurite.connection_string, tmp_path, dunning_policies_file=policies)
    monkeypatch.setattr(handler, "dependencies", lambda: built.deps)
    return built


def deliver(body: bytes, message_id: str) -> None:
    handler.payment_failed(QueueMessage(id=message_id, body=body, dequeue_count=1, pop_receipt="pr"))


def failed_payment(account_id: str, policy: str | None = None) -> bytes:
    document = payment_failed_document(account_id, event_id=f"evt-failed-{account_id}", locale="en-US")
    document["time"] = FAILED_AT.isoformat()
    if policy is not None:
        document["data"]["account"]["dunningPolicy"] = policy
    return body_of(document)


def account_updated(account_id: str, at: datetime, **data: Any) -> bytes:
    return body_of(
        {
            "specversion": "1.0",
            "id": f"evt-updated-{account_id}-{at.timestamp():.0f}",
            "type": "account.updated",
            "source": "/billing-engine",
            "time": at.isoformat(),
            "data": {"accountId": account_id, **data},
        }
    )


def arrive(world: World, account_id: str, policy: str | None = None) -> None:
    world.clock.set(FAILED_AT)
    deliver(failed_payment(account_id, policy), f"msg-{account_id}")
    assert world.subscription(account_id, "sub-a").state is SubscriptionState.PAST_DUE


def dates_of(world: World, account_id: str) -> dict[str, Any]:
    overview = world.deps.account_overview(account_id, ADMIN).to_wire()
    subscriptions = overview["subscriptions"]
    assert isinstance(subscriptions, list)
    by_id = {s["id"]: s["dates"] for s in subscriptions if isinstance(s, dict)}
    dates = by_id["sub-a"]
    assert isinstance(dates, dict)
    return dates


def at(value: object) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value)


def live_nights(world: World, start: datetime, end: datetime) -> dict[str, list[tuple[K, datetime | None]]]:
    """Every action of every nightly run from `start` to `end`, per account: kind and the milestone's moment."""
    happened: dict[str, list[tuple[K, datetime | None]]] = {}
    for night in nightly_runs(start, end):
        report = world.run(night)
        assert report.accounts_failed == 0
        for action in report.actions:
            if action.subscription_id == "sub-a":
                happened.setdefault(action.account_id, []).append((action.kind, action.milestone_at))
    return happened


def test_a_gold_account_is_cancelled_on_day_60_while_a_default_one_goes_on_day_30(world: World) -> None:
    gold, plain = new_account_id(), new_account_id()
    arrive(world, gold, "gold")
    arrive(world, plain)

    live_nights(world, FAILED_AT, NIGHT_AFTER_DAY_30 - timedelta(days=1))
    world.run(NIGHT_AFTER_DAY_30)

    assert world.subscription(plain, "sub-a").state is SubscriptionState.DISABLED
    assert world.subscription(gold, "sub-a").state is SubscriptionState.PAST_DUE

    world.run(NIGHT_AFTER_DAY_60 - timedelta(days=1))
    assert world.subscription(gold, "sub-a").state is SubscriptionState.WARNED

    world.run(NIGHT_AFTER_DAY_60)
    disabled = world.subscription(gold, "sub-a")
    assert disabled.state is SubscriptionState.DISABLED
    assert disabled.disabled_at == NIGHT_AFTER_DAY_60


def test_the_overview_dates_are_the_moments_the_timeline_then_acts_on(world: World) -> None:
    gold = new_account_id()
    arrive(world, gold, "gold")
    promised = dates_of(world, gold)

    assert at(promised["cancellation"]) == FAILED_AT + timedelta(days=60)
    assert at(promised["warning"]) == FAILED_AT + timedelta(days=55)
    assert at(promised["deletion"]) == FAILED_AT + timedelta(days=60 + 120)
    assert promised["nextRetry"] is None  # the event names no reusable gateway token: nothing to retry
    # The emails write the same day in the account's locale (en-US here): the payment-failed email at once, …
    cancellation_day = "March 5, 2027"
    assert at(promised["cancellation"]).date().isoformat() == "2027-03-05"
    assert [cancellation_day in email.plain_text for email in world.email.sent] == [True]

    happened = live_nights(world, FAILED_AT, NIGHT_AFTER_DAY_60)[gold]
    acted_at = dict(happened)
    assert acted_at[K.FINAL_NOTICE] == at(promised["warning"])
    assert acted_at[K.DISABLED] == at(promised["cancellation"])
    assert [moment for kind, moment in happened if kind is K.REMINDER] == [
        FAILED_AT + timedelta(days=day) for day in GOLD_REMINDER_DAYS
    ]

    # … and every reminder and the final notice after it.
    later = [email for email in world.email.sent[1:] if "Payment reminder" in email.subject or "Final" in email.subject]
    assert len(later) == len(GOLD_REMINDER_DAYS) + 1
    assert all(cancellation_day in email.plain_text for email in later)

    after = dates_of(world, gold)
    disabled_at = world.subscription(gold, "sub-a").disabled_at
    assert disabled_at is not None
    assert (after["warning"], after["cancellation"]) == (None, None)
    assert at(after["deletion"]) == disabled_at + timedelta(days=120)

    world.run(at(after["deletion"]) - timedelta(seconds=1))
    assert world.subscription(gold, "sub-a").state is SubscriptionState.DISABLED
    report = world.run(at(after["deletion"]))
    deleted = [a for a in report.actions if a.account_id == gold and a.kind is K.DELETED]
    assert [a.milestone_at for a in deleted] == [at(after["deletion"])]
    assert world.subscription(gold, "sub-a").state is SubscriptionState.DELETED


def test_a_payment_failed_naming_an_unknown_policy_is_rejected_with_nothing_changed(world: World) -> None:
    account_id = new_account_id()

    deliver(failed_payment(account_id, "platinum"), f"msg-{account_id}")

    rejection = world.deps.get_rejection(f"msg-{account_id}")
    assert rejection is not None
    assert rejection.reason == (
        "UnknownDunningPolicyError: data.account.dunningPolicy: unknown dunning policy 'platinum'; "
        "configured: default, gold"
    )
    assert rejection.event_id == f"evt-failed-{account_id}"
    assert not world.load(account_id).exists
    assert world.due_entries(account_id, FAILED_AT + timedelta(days=365)) == []


def test_an_account_updated_naming_an_unknown_policy_is_rejected_with_nothing_changed(world: World) -> None:
    account_id = new_account_id()
    arrive(world, account_id, "gold")
    before = world.load(account_id)
    message_id = f"msg-update-{account_id}"

    deliver(account_updated(account_id, FAILED_AT + timedelta(hours=1), dunningPolicy="bronze"), message_id)

    rejection = world.deps.get_rejection(message_id)
    assert rejection is not None
    assert rejection.reason.startswith("UnknownDunningPolicyError: data.dunningPolicy: unknown dunning policy 'bronze'")
    after = world.load(account_id)
    assert (after.account, after.rows) == (before.account, before.rows)


def test_a_policy_changed_midway_applies_from_the_next_review_and_repeats_no_notice(world: World) -> None:
    account_id = new_account_id()
    arrive(world, account_id)
    day_20 = FAILED_AT + timedelta(days=20)
    early = live_nights(world, FAILED_AT, day_20)[account_id]
    assert [kind for kind, _ in early] == [K.REMINDER, K.REMINDER]

    world.clock.set(day_20)
    deliver(account_updated(account_id, day_20, dunningPolicy="gold"), f"msg-gold-{account_id}")
    assert world.deps.get_rejection(f"msg-gold-{account_id}") is None
    account = world.load(account_id).account
    assert account is not None
    assert account.dunning_policy == "gold"

    late = live_nights(world, day_20, NIGHT_AFTER_DAY_60)[account_id]
    assert late == [
        (K.REMINDER, FAILED_AT + timedelta(days=40)),
        (K.FINAL_NOTICE, FAILED_AT + timedelta(days=55)),
        (K.DISABLED, FAILED_AT + timedelta(days=60)),
    ]
    sent = Counter(email.operation_id for email in world.email.sent)
    assert len(sent) == len([n for n in world.notifications(account_id) if n.sent_at is not None])
    assert set(sent.values()) == {1}
    reminders = [n for n in world.notifications(account_id) if n.template == "retention_reminder"]
    announced = [n.context["cancellation_date"] for n in sorted(reminders, key=lambda n: n.created_at)]
    old_date, new_date = (FAILED_AT + timedelta(days=30)).date(), (FAILED_AT + timedelta(days=60)).date()
    assert announced == [old_date.isoformat(), old_date.isoformat(), new_date.isoformat()]


def test_the_snapshot_of_an_existing_account_never_changes_its_policy(world: World) -> None:
    account_id = new_account_id()
    arrive(world, account_id, "gold")
    second = payment_failed_document(account_id, event_id=f"evt-again-{account_id}", locale="en-US")
    second["data"]["account"]["dunningPolicy"] = "default"

    deliver(body_of(second), f"msg-again-{account_id}")

    partition = world.load(account_id)
    assert partition.account is not None
    assert partition.account.dunning_policy == "gold"
    assert world.deps.get_rejection(f"msg-again-{account_id}") is None
    assert partition.get(Subscription, "sub-a") is not None

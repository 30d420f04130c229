"""The retention timer over a whole unpaid life: reminders, warning, cancellation, deletion warnings, deletion.

One account lives through every nightly run from its failed payment until after its deletion; the tests below
look at that one history from different sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from devhost.azurite import AzuriteProcess
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Alert, AlertKind, Charge, PaymentMethod, Subscription
from shared.domain.outbox import NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.retention_plan import RetentionActionKind, Template
from shared.domain.settlement import Settlement
from shared.storage.audit_log import TableAuditLog
from tests.support.retention import (
    ADMIN_EMAIL,
    FAILED_AT,
    SUBSCRIPTION_NAME,
    World,
    make_world,
    new_account_id,
    nightly_runs,
    seed_past_due_account,
)

pytestmark = pytest.mark.azurite

K = RetentionActionKind
DISABLED_ON = datetime.fromisoformat("2027-02-04T02:00:00+00:00")  # the night after failure + 30 days
DELETED_ON = DISABLED_ON + timedelta(days=90)


@dataclass
class Timeline:
    world: World
    account_id: str
    happened: list[tuple[str, K, int]] = field(default_factory=list)
    snapshots: dict[datetime, AccountPartition] = field(default_factory=dict)


@pytest.fixture(scope="module")
def timeline(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Timeline:
    world = make_world(azurite.connection_string, tmp_path_factory.mktemp("timeline"))
    lived = Timeline(world, new_account_id())
    seed_past_due_account(world, lived.account_id, gateway_token="tok_test")
    watched = {DISABLED_ON - timedelta(days=1), DISABLED_ON, DELETED_ON - timedelta(seconds=1), DELETED_ON}
    runs = sorted({*nightly_runs(FAILED_AT, DELETED_ON + timedelta(days=5)), DELETED_ON - timedelta(seconds=1)})
    for at in runs:
        report = world.run(at)
        assert report.accounts_failed == 0
        lived.happened += [(at.date().isoformat(), a.kind, a.offset_days) for a in report.actions]
        if at in watched:
            lived.snapshots[at] = world.load(lived.account_id)
    return lived


def subscription_at(timeline: Timeline, at: datetime) -> Subscription:
    subscription = timeline.snapshots[at].get(Subscription, "sub-1")
    assert subscription is not None
    return subscription


def test_an_unpaid_subscription_goes_through_every_step_once_each_on_its_night(timeline: Timeline) -> None:
    assert timeline.happened == [
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


def test_every_email_names_the_cancellation_or_deletion_date_and_goes_out_once(timeline: Timeline) -> None:
    sender = timeline.world.email
    assert [email.subject for email in sender.sent] == [
        f"Payment reminder: {SUBSCRIPTION_NAME} will be cancelled on February 3, 2027",
        f"Payment reminder: {SUBSCRIPTION_NAME} will be cancelled on February 3, 2027",
        f"Final notice: {SUBSCRIPTION_NAME} will be disabled on February 3, 2027",
        f"{SUBSCRIPTION_NAME} has been disabled; its data will be deleted on May 5, 2027",
        f"The data of {SUBSCRIPTION_NAME} will be deleted on May 5, 2027",
        f"The data of {SUBSCRIPTION_NAME} will be deleted on May 5, 2027",
        f"The data of {SUBSCRIPTION_NAME} will be deleted on May 5, 2027",
        "Subscription sub-1 and its data have been deleted",
    ]
    assert {email.to_address for email in sender.sent} == {ADMIN_EMAIL}
    assert len({email.operation_id for email in sender.sent}) == 8
    assert len(sender.eml_files) == 8
    assert "€1,234.50" in sender.sent[0].plain_text
    assert "in 1 day)" in sender.sent[6].plain_text


def test_the_states_follow_azure_and_deletion_waits_ninety_days_after_the_cancellation(timeline: Timeline) -> None:
    assert subscription_at(timeline, DISABLED_ON - timedelta(days=1)).state is SubscriptionState.WARNED
    disabled = subscription_at(timeline, DISABLED_ON)
    assert disabled.state is SubscriptionState.DISABLED
    assert disabled.disabled_at == DISABLED_ON
    assert subscription_at(timeline, DELETED_ON - timedelta(seconds=1)).state is SubscriptionState.DISABLED
    tombstone = subscription_at(timeline, DELETED_ON)
    assert [t.to_state for t in tombstone.history] == [
        SubscriptionState.PAST_DUE,
        SubscriptionState.WARNED,
        SubscriptionState.DISABLED,
        SubscriptionState.DELETED,
    ]
    assert tombstone.history[-1].at - disabled.history[-1].at == timedelta(days=90)


def test_warning_and_cancellation_leave_portal_alerts_naming_the_dates(timeline: Timeline) -> None:
    alerts = {alert.kind: alert for alert in timeline.snapshots[DISABLED_ON].all(Alert)}

    assert set(alerts) == {AlertKind.WILL_BE_DISABLED, AlertKind.DISABLED}
    assert str(alerts[AlertKind.WILL_BE_DISABLED].effective_date) == "2027-02-03"
    assert not alerts[AlertKind.WILL_BE_DISABLED].is_open
    assert str(alerts[AlertKind.DISABLED].effective_date) == "2027-05-05"
    assert alerts[AlertKind.DISABLED].is_open


def test_deletion_leaves_only_a_nameless_tombstone_and_the_deletion_notice(timeline: Timeline) -> None:
    partition = timeline.world.load(timeline.account_id)

    tombstone = partition.get(Subscription, "sub-1")
    assert tombstone is not None
    assert tombstone.state is SubscriptionState.DELETED
    assert tombstone.name == ""
    assert partition.all(Charge) == []
    assert partition.all(Alert) == []
    assert partition.all(Settlement) == []
    assert partition.all(PaymentMethod) == []
    assert [(n.template, n.status) for n in partition.notifications] == [(Template.DELETED, NotificationStatus.SENT)]
    assert SUBSCRIPTION_NAME not in partition.notifications[0].model_dump_json()


def test_nothing_stays_on_the_due_index_after_the_deletion(timeline: Timeline) -> None:
    assert timeline.world.due_entries(timeline.account_id, DELETED_ON + timedelta(days=3650)) == []


def test_the_audit_record_keeps_ids_dates_and_amounts_but_no_personal_data(timeline: Timeline) -> None:
    (record,) = TableAuditLog(timeline.world.deps.tables).deletions(timeline.account_id)

    assert record.subscription_id == "sub-1"
    assert record.service == "Virtual Machines"
    assert record.reason == "retention_ended"
    assert record.past_due_since == FAILED_AT
    assert record.disabled_at == DISABLED_ON
    assert record.deleted_at == DELETED_ON
    assert [(c.invoice_id, c.amount.amount, c.status) for c in record.charges] == [("inv-1", "1234.50", "outstanding")]
    assert [str(m) for m in record.outstanding] == ["1234.50 EUR"]
    assert record.payment_method_ids == ("pm-card",)
    stored = record.model_dump_json()
    for personal in (ADMIN_EMAIL, SUBSCRIPTION_NAME, "4242", "visa", "tok_test"):
        assert personal not in stored


def test_cancellation_and_deletion_publish_cloudevents_on_the_lifecycle_queue(timeline: Timeline) -> None:
    events = timeline.world.lifecycle_events()

    assert [e["type"] for e in events] == ["subscription.disabled", "subscription.deleted"]
    disabled, deleted = events
    assert disabled["specversion"] == "1.0"
    assert disabled["source"] == "/pastdue"
    assert disabled["subject"] == f"/accounts/{timeline.account_id}/subscriptions/sub-1"
    assert disabled["time"] == "2027-02-04T02:00:00Z"
    assert disabled["data"]["state"] == "Disabled"
    assert disabled["data"]["deletionDate"] == "2027-05-05"
    assert deleted["data"]["state"] == "Deleted"
    assert deleted["time"] == "2027-05-05T02:00:00Z"
    assert disabled["id"] != deleted["id"]
    assert SUBSCRIPTION_NAME not in str(events)
    assert ADMIN_EMAIL not in str(events)

"""ACS delivery reports on the in-memory fakes: each email's status, repeats, order, the undeliverable-address alert."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta

import pytest

from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.delivery_reports import (
    NOTIFICATION_STATUS_OF,
    UNDELIVERABLE_ALERT_ID,
    AcsDeliveryStatus,
    DeliveryReportOutcome,
    resolve_if_address_changed,
)
from shared.domain.model import Account, Alert, AlertKind
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import AccountUpdatedEvent, PaymentFailedEvent
from shared.services.ports import SentMessage
from shared.services.unit_of_work import with_fresh_partition
from shared.settings import Settings
from tests.fakes import MemoryAccountStore, MemoryLifecyclePublisher, RacingAccounts, build_in_memory
from tests.support.delivery_reports import report
from tests.support.lifecycle_events import schema_errors
from tests.support.payment_events import payment_failed_document

NOW = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
ACCOUNT = "acc-1"
ADMIN = "user-7"
ADDRESS = "billing@contoso.example"
NEW_ADDRESS = "ap@contoso.example"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(clock: FixedClock) -> Dependencies:
    return build_in_memory(Settings(), clock)


def notification(notification_id: str, minutes: int = 0, to_address: str = ADDRESS) -> Notification:
    return Notification(
        id=notification_id,
        template="_smoke",
        locale="en-US",
        to_address=to_address,
        context={"name": "Ada", "note": "hello"},
        created_at=NOW + timedelta(minutes=minutes),
        next_attempt_at=NOW + timedelta(minutes=minutes),
    )


def sent_emails(deps: Dependencies, *notification_ids: str) -> dict[str, str]:
    """Seed the account with these emails and send them: {notification id: ACS message id}."""
    partition = deps.accounts.load(ACCOUNT)
    if partition.account is None:
        partition.set_account(
            Account(id=ACCOUNT, admin_principal_id=ADMIN, notification_email=ADDRESS, locale="en-US", currency="EUR")
        )
    partition.put(*(notification(n) for n in notification_ids))
    deps.accounts.commit(partition)
    assert deps.deliver(ACCOUNT).sent == list(notification_ids)
    stored = deps.accounts.load(ACCOUNT)
    message_ids = {n: stored_notification(stored, n).message_id for n in notification_ids}
    assert all(message_ids.values())
    return {n: m for n, m in message_ids.items() if m is not None}


def stored_notification(partition: AccountPartition, notification_id: str) -> Notification:
    found = partition.get(Notification, notification_id)
    assert found is not None
    return found


def the_alert(deps: Dependencies) -> Alert | None:
    return deps.accounts.load(ACCOUNT).get(Alert, UNDELIVERABLE_ALERT_ID)


def published(deps: Dependencies) -> MemoryLifecyclePublisher:
    assert isinstance(deps.events, MemoryLifecyclePublisher)
    return deps.events


def test_a_delivered_report_records_the_status_and_what_the_receiver_said(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]

    result = deps.apply_delivery_report(report(message, "Delivered", NOW + timedelta(seconds=5), "250 2.0.0 OK"))

    email = stored_notification(deps.accounts.load(ACCOUNT), "n-1")
    assert (result.outcome, result.account_id, result.notification_id) == (
        DeliveryReportOutcome.APPLIED,
        ACCOUNT,
        "n-1",
    )
    assert (email.status, email.status_detail, email.message_id) == (
        NotificationStatus.DELIVERED,
        "250 2.0.0 OK",
        message,
    )
    assert email.delivery_attempt_at == NOW + timedelta(seconds=5)
    (listed,) = deps.notification_email(ACCOUNT, ADMIN).last_notifications
    wire = listed.to_wire()
    assert (wire["messageId"], wire["status"], wire["statusDetail"]) == (message, "delivered", "250 2.0.0 OK")


@pytest.mark.parametrize(
    ("acs_status", "status"),
    [
        ("Delivered", NotificationStatus.DELIVERED),
        ("Expanded", NotificationStatus.DELIVERED),
        ("Bounced", NotificationStatus.BOUNCED),
        ("Suppressed", NotificationStatus.SUPPRESSED),
        ("FilteredSpam", NotificationStatus.FILTERED_SPAM),
        ("Quarantined", NotificationStatus.QUARANTINED),
        ("Failed", NotificationStatus.FAILED),
    ],
)
def test_every_acs_status_has_its_notification_status(
    deps: Dependencies, acs_status: str, status: NotificationStatus
) -> None:
    message = sent_emails(deps, "n-1")["n-1"]

    deps.apply_delivery_report(report(message, acs_status, NOW + timedelta(seconds=5)))

    assert stored_notification(deps.accounts.load(ACCOUNT), "n-1").status is status


def test_the_status_table_covers_every_acs_status() -> None:
    assert set(NOTIFICATION_STATUS_OF) == set(AcsDeliveryStatus)


def test_the_same_report_twice_changes_nothing(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]
    bounced = report(message, "Bounced", NOW + timedelta(seconds=5), "550 5.1.1 mailbox unavailable")
    deps.apply_delivery_report(bounced)
    assert isinstance(deps.accounts, MemoryAccountStore)
    commits, before = deps.accounts.commits, deps.accounts.load(ACCOUNT).rows

    again = deps.apply_delivery_report(bounced)

    assert again.outcome is DeliveryReportOutcome.DUPLICATE
    assert (deps.accounts.commits, deps.accounts.load(ACCOUNT).rows) == (commits, before)
    assert len(published(deps).events) == 1


def test_an_older_report_arriving_late_never_overwrites_a_newer_one(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]
    deps.apply_delivery_report(report(message, "Delivered", NOW + timedelta(minutes=3)))

    late = deps.apply_delivery_report(report(message, "Failed", NOW + timedelta(minutes=1), "first attempt failed"))

    email = stored_notification(deps.accounts.load(ACCOUNT), "n-1")
    assert late.outcome is DeliveryReportOutcome.STALE
    assert (email.status, email.delivery_attempt_at) == (NotificationStatus.DELIVERED, NOW + timedelta(minutes=3))
    assert the_alert(deps) is None


def test_a_later_attempt_wins_over_an_earlier_one(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]
    deps.apply_delivery_report(report(message, "Quarantined", NOW + timedelta(minutes=1)))

    later = deps.apply_delivery_report(report(message, "Delivered", NOW + timedelta(minutes=9)))

    assert later.outcome is DeliveryReportOutcome.APPLIED
    assert stored_notification(deps.accounts.load(ACCOUNT), "n-1").status is NotificationStatus.DELIVERED


def test_a_report_for_a_message_nobody_sent_is_acknowledged_and_logged_by_id(
    deps: Dependencies, caplog: pytest.LogCaptureFixture
) -> None:
    assert isinstance(deps.accounts, MemoryAccountStore)
    caplog.set_level(logging.INFO)

    result = deps.apply_delivery_report(report("0b7f6a3e-unknown", "Bounced", NOW))

    assert result.outcome is DeliveryReportOutcome.UNKNOWN_MESSAGE
    assert (deps.accounts.loads, deps.accounts.commits) == (0, 0)
    assert "0b7f6a3e-unknown" in caplog.text


def test_a_status_this_code_does_not_know_changes_nothing(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]

    result = deps.apply_delivery_report(report(message, "Evaporated", NOW + timedelta(seconds=5)))

    assert result.outcome is DeliveryReportOutcome.UNKNOWN_STATUS
    assert stored_notification(deps.accounts.load(ACCOUNT), "n-1").status is NotificationStatus.SENT


@pytest.mark.parametrize(
    ("acs_status", "reason"), [("Bounced", "bounced"), ("Suppressed", "suppressed"), ("Failed", "failed")]
)
def test_an_undeliverable_address_opens_one_alert_and_tells_the_billing_engine(
    deps: Dependencies, acs_status: str, reason: str
) -> None:
    message = sent_emails(deps, "n-1")["n-1"]

    result = deps.apply_delivery_report(report(message, acs_status, NOW + timedelta(seconds=5), "550 no such user"))

    assert result.alert_opened
    overview = deps.account_overview(ACCOUNT, ADMIN).to_wire()
    assert overview["alerts"] == [
        {
            "id": UNDELIVERABLE_ALERT_ID,
            "kind": "notification_address_undeliverable",
            "paymentMethodId": None,
            "subscriptionIds": [],
            "createdAt": "2027-01-04T10:00:00Z",
            "effectiveDate": None,
            "notificationEmail": ADDRESS,
            "reason": reason,
            "statusDetail": "550 no such user",
        }
    ]
    (event,) = published(deps).cloudevents
    assert schema_errors(event) == []
    assert (event["type"], event["subject"]) == (
        "notification_address.undeliverable",
        f"/accounts/{ACCOUNT}/notificationAddress",
    )
    assert event["data"] == {
        "accountId": ACCOUNT,
        "notificationEmail": ADDRESS,
        "reason": reason,
        "statusDetail": "550 no such user",
        "messageId": message,
        "reportedAt": "2027-01-04T10:00:05Z",
    }
    assert deps.accounts.load(ACCOUNT).pending_events == []  # published, and recorded as published


def test_more_bounces_to_the_same_address_keep_one_alert_and_send_no_second_event(deps: Dependencies) -> None:
    messages = sent_emails(deps, "n-1", "n-2")
    deps.apply_delivery_report(report(messages["n-1"], "Bounced", NOW + timedelta(seconds=5)))

    second = deps.apply_delivery_report(report(messages["n-2"], "Bounced", NOW + timedelta(seconds=9)))

    assert not second.alert_opened
    assert [a.id for a in deps.accounts.load(ACCOUNT).alerts if a.is_open] == [UNDELIVERABLE_ALERT_ID]
    assert len(published(deps).events) == 1


def test_a_later_delivered_email_to_that_address_resolves_the_alert(deps: Dependencies, clock: FixedClock) -> None:
    messages = sent_emails(deps, "n-1", "n-2")
    deps.apply_delivery_report(report(messages["n-1"], "Bounced", NOW + timedelta(minutes=1)))
    clock.advance(timedelta(minutes=5))

    result = deps.apply_delivery_report(report(messages["n-2"], "Delivered", NOW + timedelta(minutes=4)))

    alert = the_alert(deps)
    assert result.alert_resolved
    assert alert is not None
    assert alert.resolved_at == NOW + timedelta(minutes=5)
    assert deps.account_overview(ACCOUNT, ADMIN).alerts == ()


def test_an_email_delivered_before_the_bounce_does_not_resolve_the_alert(deps: Dependencies) -> None:
    messages = sent_emails(deps, "n-1", "n-2")
    deps.apply_delivery_report(report(messages["n-2"], "Bounced", NOW + timedelta(minutes=4)))

    result = deps.apply_delivery_report(report(messages["n-1"], "Delivered", NOW + timedelta(minutes=1)))

    alert = the_alert(deps)
    assert (result.outcome, result.alert_resolved) == (DeliveryReportOutcome.APPLIED, False)
    assert alert is not None
    assert alert.is_open


def test_a_bounce_older_than_a_delivery_to_the_same_address_opens_no_alert(deps: Dependencies) -> None:
    messages = sent_emails(deps, "n-1", "n-2")
    deps.apply_delivery_report(report(messages["n-2"], "Delivered", NOW + timedelta(minutes=4)))

    result = deps.apply_delivery_report(report(messages["n-1"], "Bounced", NOW + timedelta(minutes=1)))

    assert (result.outcome, result.alert_opened) == (DeliveryReportOutcome.APPLIED, False)
    assert stored_notification(deps.accounts.load(ACCOUNT), "n-1").status is NotificationStatus.BOUNCED
    assert the_alert(deps) is None
    assert published(deps).events == []


@pytest.mark.parametrize("acs_status", ["FilteredSpam", "Quarantined"])
def test_spam_filtering_and_quarantine_say_nothing_against_the_address(deps: Dependencies, acs_status: str) -> None:
    message = sent_emails(deps, "n-1")["n-1"]

    result = deps.apply_delivery_report(report(message, acs_status, NOW + timedelta(seconds=5)))

    assert (result.outcome, result.alert_opened) == (DeliveryReportOutcome.APPLIED, False)
    assert the_alert(deps) is None


def test_changing_the_address_resolves_the_alert(deps: Dependencies, clock: FixedClock) -> None:
    message = sent_emails(deps, "n-1")["n-1"]
    deps.apply_delivery_report(report(message, "Bounced", NOW + timedelta(seconds=5)))
    clock.advance(timedelta(hours=1))

    view = deps.notification_email(ACCOUNT, ADMIN, NEW_ADDRESS)

    alert = the_alert(deps)
    assert view.changed
    assert alert is not None
    assert alert.resolved_at == NOW + timedelta(hours=1)
    assert deps.account_overview(ACCOUNT, ADMIN).alerts == ()


def test_a_bounce_of_an_email_to_an_address_no_longer_in_use_opens_no_alert(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]
    deps.notification_email(ACCOUNT, ADMIN, NEW_ADDRESS)

    result = deps.apply_delivery_report(report(message, "Bounced", NOW + timedelta(seconds=5)))

    assert (result.outcome, result.alert_opened) == (DeliveryReportOutcome.APPLIED, False)
    assert the_alert(deps) is None


def test_a_new_failure_after_the_alert_was_resolved_opens_it_again_with_a_new_event(deps: Dependencies) -> None:
    messages = sent_emails(deps, "n-1", "n-2", "n-3")
    deps.apply_delivery_report(report(messages["n-1"], "Bounced", NOW + timedelta(minutes=1)))
    deps.apply_delivery_report(report(messages["n-2"], "Delivered", NOW + timedelta(minutes=2)))

    again = deps.apply_delivery_report(report(messages["n-3"], "Suppressed", NOW + timedelta(minutes=3)))

    alert = the_alert(deps)
    assert again.alert_opened
    assert alert is not None
    assert (alert.is_open, alert.reason, alert.reported_at) == (True, "suppressed", NOW + timedelta(minutes=3))
    first, second = published(deps).events
    assert first.id != second.id
    assert (first.data["messageId"], second.data["messageId"]) == (messages["n-1"], messages["n-3"])


def test_an_account_updated_with_another_address_resolves_the_alert(deps: Dependencies) -> None:
    # A payment.failed snapshot never changes an existing account's address (issue 12): account.updated does.
    message = sent_emails(deps, "n-1")["n-1"]
    deps.apply_delivery_report(report(message, "Bounced", NOW + timedelta(seconds=5)))
    updated = AccountUpdatedEvent.model_validate(
        {
            "specversion": "1.0",
            "id": "evt-new-address",
            "type": "account.updated",
            "source": "/billing-engine",
            "time": (NOW + timedelta(minutes=1)).isoformat(),
            "data": {"accountId": ACCOUNT, "notificationEmail": NEW_ADDRESS},
        }
    )

    deps.apply_account_updated(updated)

    alert = the_alert(deps)
    assert alert is not None
    assert not alert.is_open


def test_the_address_alert_outlives_a_payment_failed_with_the_same_address(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]
    deps.apply_delivery_report(report(message, "Bounced", NOW + timedelta(seconds=5)))
    document = payment_failed_document(ACCOUNT)
    document["data"]["account"]["notificationEmail"] = ADDRESS  # type: ignore[index]

    deps.apply_payment_failed(PaymentFailedEvent.model_validate(document))

    open_kinds = {a.kind for a in deps.accounts.load(ACCOUNT).alerts if a.is_open}
    assert AlertKind.NOTIFICATION_ADDRESS_UNDELIVERABLE in open_kinds


def test_a_report_for_an_email_whose_send_was_never_recorded_marks_it_sent_so_it_is_not_sent_again(
    deps: Dependencies,
) -> None:
    # The send went out and the index learned its message id, but the commit recording the send was lost.
    sent_emails(deps, "n-0")
    partition = deps.accounts.load(ACCOUNT)
    partition.put(notification("n-1"))
    deps.accounts.commit(partition)
    message_id = "3c1d2e4f-crash-before-record"
    deps.messages.remember(SentMessage(message_id, ACCOUNT, "n-1"))

    deps.apply_delivery_report(report(message_id, "Delivered", NOW + timedelta(seconds=5)))

    email = stored_notification(deps.accounts.load(ACCOUNT), "n-1")
    assert (email.status, email.message_id, email.is_pending) == (NotificationStatus.DELIVERED, message_id, False)
    assert deps.deliver(ACCOUNT).sent == []


def test_a_lost_race_reads_again_and_applies_the_report_once(deps: Dependencies) -> None:
    message = sent_emails(deps, "n-1")["n-1"]

    def someone_else_writes() -> None:
        with_fresh_partition(deps.accounts, ACCOUNT, lambda p: p.put(notification("n-9")))

    racing = RacingAccounts(deps.accounts, someone_else_writes)

    result = dataclasses.replace(deps, accounts=racing).apply_delivery_report(
        report(message, "Bounced", NOW + timedelta(seconds=5))
    )

    partition = deps.accounts.load(ACCOUNT)
    assert (racing.races, result.alert_opened) == (1, True)
    assert stored_notification(partition, "n-1").status is NotificationStatus.BOUNCED
    assert partition.get(Notification, "n-9") is not None
    assert len(published(deps).events) == 1


def test_no_log_line_names_the_address(deps: Dependencies, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    messages = sent_emails(deps, "n-1", "n-2")

    deps.apply_delivery_report(report(messages["n-1"], "Bounced", NOW + timedelta(seconds=5), f"550 {ADDRESS} unknown"))
    deps.apply_delivery_report(report(messages["n-2"], "Delivered", NOW + timedelta(seconds=9)))
    deps.notification_email(ACCOUNT, ADMIN, NEW_ADDRESS)

    assert caplog.records
    assert not [r.getMessage() for r in caplog.records if ADDRESS in r.getMessage() or NEW_ADDRESS in r.getMessage()]


def test_the_alert_resolves_only_for_the_address_it_is_about() -> None:
    partition = AccountPartition(account_id=ACCOUNT)
    partition.set_account(
        Account(id=ACCOUNT, admin_principal_id=ADMIN, notification_email=ADDRESS, locale="en-US", currency="EUR")
    )
    partition.put(
        Alert(
            id=UNDELIVERABLE_ALERT_ID,
            kind=AlertKind.NOTIFICATION_ADDRESS_UNDELIVERABLE,
            created_at=NOW,
            email_address=ADDRESS,
            reason="bounced",
        )
    )

    assert resolve_if_address_changed(partition, NOW) is False
    partition.set_account(partition.account.model_copy(update={"notification_email": NEW_ADDRESS}))  # type: ignore[union-attr]
    assert resolve_if_address_changed(partition, NOW) is True
    alert = partition.get(Alert, UNDELIVERABLE_ALERT_ID)
    assert alert is not None
    assert alert.resolved_at == NOW


def test_a_delivery_older_than_the_failure_behind_the_alert_leaves_it_open_even_once_that_email_is_gone(
    deps: Dependencies,
) -> None:
    messages = sent_emails(deps, "n-1", "n-2")
    deps.apply_delivery_report(report(messages["n-2"], "Bounced", NOW + timedelta(minutes=4)))
    partition = deps.accounts.load(ACCOUNT)
    partition.delete(stored_notification(partition, "n-2"))  # purged with its deleted subscription
    deps.accounts.commit(partition)

    result = deps.apply_delivery_report(report(messages["n-1"], "Delivered", NOW + timedelta(minutes=1)))

    alert = the_alert(deps)
    assert (result.outcome, result.alert_resolved) == (DeliveryReportOutcome.APPLIED, False)
    assert alert is not None
    assert alert.is_open

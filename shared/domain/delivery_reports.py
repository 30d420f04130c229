"""An email's delivery report, decided: what its notification records, and whether the address is undeliverable.

Azure Communication Services reports each delivery attempt as an Event Grid event
(`Microsoft.Communication.EmailDeliveryReportReceived`). Reports arrive at least once and in any order, so the latest
delivery attempt (`deliveryAttemptTimestamp`) wins, for the email and for its address; an older report never
overwrites a newer one and a repeat changes nothing. When the latest word on the account's notification address is
that it cannot be delivered to, one portal alert opens and the billing engine hears of it
(`notification_address.undeliverable`); a later delivered email to that address, or another address, resolves it.
No I/O here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.domain.lifecycle_events import EmailDelivery, UndeliverableReason, notification_address_undeliverable
from shared.domain.model import Alert, AlertKind, Frozen
from shared.domain.outbox import Notification, NotificationStatus
from shared.domain.partition import AccountPartition

EMAIL_DELIVERY_REPORT = "Microsoft.Communication.EmailDeliveryReportReceived"
UNDELIVERABLE_ALERT_ID = "notification-address-undeliverable"


class AcsDeliveryStatus(StrEnum):
    DELIVERED = "Delivered"
    EXPANDED = "Expanded"
    BOUNCED = "Bounced"
    SUPPRESSED = "Suppressed"
    FILTERED_SPAM = "FilteredSpam"
    QUARANTINED = "Quarantined"
    FAILED = "Failed"


# What each ACS status means for the notification (docs/settlement-api.md explains the mapping).
NOTIFICATION_STATUS_OF: dict[AcsDeliveryStatus, NotificationStatus] = {
    AcsDeliveryStatus.DELIVERED: NotificationStatus.DELIVERED,
    # A distribution list took the email and sent it on to its members: delivered, as far as the address goes.
    AcsDeliveryStatus.EXPANDED: NotificationStatus.DELIVERED,
    AcsDeliveryStatus.BOUNCED: NotificationStatus.BOUNCED,
    AcsDeliveryStatus.SUPPRESSED: NotificationStatus.SUPPRESSED,
    AcsDeliveryStatus.FILTERED_SPAM: NotificationStatus.FILTERED_SPAM,
    AcsDeliveryStatus.QUARANTINED: NotificationStatus.QUARANTINED,
    AcsDeliveryStatus.FAILED: NotificationStatus.FAILED,
}
# What a status says about the address itself. Spam filtering and quarantine say nothing against it (the receiving
# system took the email: the reader should look in the junk folder, not change the address).
UNDELIVERABLE: dict[NotificationStatus, UndeliverableReason] = {
    NotificationStatus.BOUNCED: "bounced",
    NotificationStatus.SUPPRESSED: "suppressed",
    NotificationStatus.FAILED: "failed",
}
REACHABLE = frozenset({NotificationStatus.DELIVERED})


class _ReportModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)


class DeliveryStatusDetails(_ReportModel):
    status_message: str | None = None


class EmailDeliveryReport(_ReportModel):
    """The `data` of a delivery report; sender and recipient are not kept (the notification knows its address)."""

    message_id: str = Field(min_length=1, max_length=256)
    status: str = Field(min_length=1, max_length=64)
    delivery_status_details: DeliveryStatusDetails | None = None
    delivery_attempt_timestamp: AwareDatetime

    @property
    def detail(self) -> str | None:
        return self.delivery_status_details.status_message if self.delivery_status_details else None


class DeliveryReportOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    UNKNOWN_MESSAGE = "unknown_message"
    UNKNOWN_STATUS = "unknown_status"


class DeliveryReportResult(Frozen):
    message_id: str
    outcome: DeliveryReportOutcome
    account_id: str | None = None
    notification_id: str | None = None
    status: NotificationStatus | None = None
    alert_opened: bool = False
    alert_resolved: bool = False


def notification_status_of(acs_status: str) -> NotificationStatus | None:
    """The notification status for an ACS status; None for a status this code does not know."""
    try:
        return NOTIFICATION_STATUS_OF[AcsDeliveryStatus(acs_status)]
    except ValueError:
        return None


def stage_delivery_report(
    partition: AccountPartition, notification_id: str, report: EmailDeliveryReport, *, now: datetime
) -> DeliveryReportResult:
    """Stage what the report changes on `partition` (nothing is written): the email's status, the address alert."""
    found = {"message_id": report.message_id, "account_id": partition.account_id, "notification_id": notification_id}
    notification = partition.get(Notification, notification_id)
    if notification is None or partition.account is None:
        return DeliveryReportResult(**found, outcome=DeliveryReportOutcome.UNKNOWN_MESSAGE)
    status = notification_status_of(report.status)
    if status is None:
        return DeliveryReportResult(**found, outcome=DeliveryReportOutcome.UNKNOWN_STATUS)
    attempt_at = report.delivery_attempt_timestamp
    recorded_at = notification.delivery_attempt_at
    if recorded_at is not None and attempt_at <= recorded_at:
        repeat = attempt_at == recorded_at and notification.status is status
        outcome = DeliveryReportOutcome.DUPLICATE if repeat else DeliveryReportOutcome.STALE
        return DeliveryReportResult(**found, outcome=outcome, status=notification.status)
    updated = notification.record_delivery(status, report.detail, attempt_at, report.message_id)
    partition.put(updated)
    opened, resolved = _judge_address(partition, updated, now)
    return DeliveryReportResult(
        **found, outcome=DeliveryReportOutcome.APPLIED, status=status, alert_opened=opened, alert_resolved=resolved
    )


def resolve_if_address_changed(partition: AccountPartition, now: datetime) -> bool:
    """A new notification address ends the alert about the old one; True if an alert was resolved."""
    alert = partition.get(Alert, UNDELIVERABLE_ALERT_ID)
    if alert is None or not alert.is_open or partition.account is None:
        return False
    if alert.email_address == partition.account.notification_email:
        return False
    partition.put(alert.resolve(now))
    return True


def _judge_address(partition: AccountPartition, notification: Notification, now: datetime) -> tuple[bool, bool]:
    """Open or resolve the address alert when `notification` holds the latest word on the current address."""
    assert partition.account is not None
    address = partition.account.notification_email
    status = notification.status
    judged = status in UNDELIVERABLE or status in REACHABLE
    if not judged or notification.to_address != address or not _is_latest_word(partition, notification):
        return False, False
    alert = partition.get(Alert, UNDELIVERABLE_ALERT_ID)
    open_alert = alert if alert is not None and alert.is_open and alert.email_address == address else None
    attempt_at = notification.delivery_attempt_at
    assert attempt_at is not None
    if status in REACHABLE:
        if open_alert is None or (open_alert.reported_at is not None and attempt_at <= open_alert.reported_at):
            return False, False
        partition.put(open_alert.resolve(now))
        return False, True
    if open_alert is not None:
        return False, False
    reason = UNDELIVERABLE[status]
    partition.put(
        Alert(
            id=UNDELIVERABLE_ALERT_ID,
            kind=AlertKind.NOTIFICATION_ADDRESS_UNDELIVERABLE,
            created_at=now,
            email_address=address,
            reason=reason,
            detail=notification.status_detail,
            reported_at=attempt_at,
        ),
        notification_address_undeliverable(
            partition.account_id,
            address,
            reason=reason,
            detail=notification.status_detail,
            cause=EmailDelivery(message_id=notification.message_id or notification.id),
            reported_at=attempt_at,
            at=now,
        ),
    )
    return True, False


def _is_latest_word(partition: AccountPartition, notification: Notification) -> bool:
    """No other email to the same address has a later delivery attempt that says something about the address."""
    attempt_at = notification.delivery_attempt_at
    assert attempt_at is not None
    return all(
        other.delivery_attempt_at <= attempt_at
        for other in partition.notifications
        if other.id != notification.id
        and other.to_address == notification.to_address
        and other.delivery_attempt_at is not None
        and (other.status in UNDELIVERABLE or other.status in REACHABLE)
    )

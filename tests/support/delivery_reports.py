"""ACS email delivery reports as Event Grid delivers them: the event data, in the Event Grid and CloudEvents schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.domain.delivery_reports import EMAIL_DELIVERY_REPORT, EmailDeliveryReport

ACS_RESOURCE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-pastdue/providers/"
    "Microsoft.Communication/communicationServices/acs-pastdue"
)
SENDER = "DoNotReply@billing.pastdue.example"


def report_data(
    message_id: str, status: str, attempt_at: datetime, detail: str | None = None, recipient: str = "a@b.example"
) -> dict[str, Any]:
    """The `data` of a `Microsoft.Communication.EmailDeliveryReportReceived` event."""
    return {
        "sender": SENDER,
        "recipient": recipient,
        "messageId": message_id,
        "internetMessageId": f"<{message_id}@eu.azurecomm.example>",
        "status": status,
        "deliveryStatusDetails": {"statusMessage": detail or status},
        "deliveryAttemptTimestamp": attempt_at.isoformat().replace("+00:00", "Z"),
    }


def report(message_id: str, status: str, attempt_at: datetime, detail: str | None = None) -> EmailDeliveryReport:
    return EmailDeliveryReport.model_validate(report_data(message_id, status, attempt_at, detail))


def eventgrid_event(data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """One event in the Event Grid schema, as in the array Event Grid posts."""
    return {
        "id": event_id or str(uuid.uuid4()),
        "topic": ACS_RESOURCE,
        "subject": f"sender/{SENDER}/message/{data['messageId']}",
        "eventType": EMAIL_DELIVERY_REPORT,
        "eventTime": data["deliveryAttemptTimestamp"],
        "data": data,
        "dataVersion": "1.0",
        "metadataVersion": "1",
    }


def cloud_event(data: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """The same report in the CloudEvents 1.0 schema."""
    return {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": ACS_RESOURCE,
        "type": EMAIL_DELIVERY_REPORT,
        "subject": f"sender/{SENDER}/message/{data['messageId']}",
        "time": data["deliveryAttemptTimestamp"],
        "datacontenttype": "application/json",
        "data": data,
    }


def validation_event(code: str) -> dict[str, Any]:
    """Event Grid's subscription validation event (Event Grid schema)."""
    return {
        "id": str(uuid.uuid4()),
        "topic": ACS_RESOURCE,
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2027-01-04T10:00:00Z",
        "data": {"validationCode": code, "validationUrl": "https://eventgrid.example/validate?code=x"},
        "dataVersion": "2",
        "metadataVersion": "1",
    }

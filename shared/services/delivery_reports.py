"""An ACS delivery report: find its notification through the message index, apply the report's decisions
(shared/domain/delivery_reports.py) in one commit, then publish the lifecycle event it may have recorded.

A report for a message the index does not know (another app's email on the same ACS resource, or one sent before
the index existed) is acknowledged and logged by ids only: retrying it would never find more.
"""

from __future__ import annotations

import logging

from shared.domain.clock import Clock
from shared.domain.delivery_reports import (
    DeliveryReportOutcome,
    DeliveryReportResult,
    EmailDeliveryReport,
    stage_delivery_report,
)
from shared.domain.partition import AccountPartition
from shared.services.delivery import Outbox, deliver, schedule_recovery
from shared.services.ports import AccountUnitOfWork, DueEntry, MessageIndex
from shared.services.unit_of_work import with_fresh_partition

log = logging.getLogger(__name__)


def apply_delivery_report(
    report: EmailDeliveryReport,
    *,
    accounts: AccountUnitOfWork,
    messages: MessageIndex,
    outbox: Outbox,
    clock: Clock,
) -> DeliveryReportResult:
    """Record what ACS says became of one email; a repeat or an older report changes nothing."""
    sent = messages.find(report.message_id)
    if sent is None:
        log.info("delivery report for unknown message %s: acknowledged, nothing to apply", report.message_id)
        return DeliveryReportResult(message_id=report.message_id, outcome=DeliveryReportOutcome.UNKNOWN_MESSAGE)
    now = clock.now()
    latest: list[AccountPartition] = []
    recovery: list[DueEntry] = []

    def change(partition: AccountPartition) -> DeliveryReportResult:
        latest[:] = [partition]
        result = stage_delivery_report(partition, sent.notification_id, report, now=now)
        if result.alert_opened and not recovery:
            recovery.append(schedule_recovery(outbox, sent.account_id))
        return result

    result = with_fresh_partition(accounts, sent.account_id, change)
    log.info(
        "delivery report for message %s (account %s, notification %s): %s%s",
        report.message_id,
        sent.account_id,
        sent.notification_id,
        result.outcome,
        f" as {result.status}" if result.status else "",
    )
    if result.alert_opened:
        deliver(outbox, sent.account_id, latest[-1], recovery=recovery[0] if recovery else None)
    return result

"""Azurite (on disk) stops and restarts while the local host is processing `payment.failed` events: nothing that
was committed is lost, every message is either processed or still on the queue, and processing resumes.
"""

from __future__ import annotations

import email
import json
import re
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy
from pydantic import SecretStr

from devhost.azurite import AzuriteProcess, start_azurite
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import ProcessedEvent, Subscription
from shared.domain.outbox import NotificationStatus
from shared.domain.payment_events import PaymentFailedEvent
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.services.delivery import RECOVERY_DELAY
from shared.settings import Settings
from tests.faults.local_host import start_local_host, wait_for
from tests.faults.published import publish

pytestmark = [pytest.mark.azurite, pytest.mark.e2e]

BEFORE_RESTART = 40
AFTER_RESTART = 15
STOP_AFTER_EMAILS = 10
# Messages the host had received when storage vanished may stay invisible for the host's in-flight visibility
# (10 minutes locally); they are not lost, they are on the queue. Wait this long without progress, then count.
# Failed messages come back after host.json's visibilityTimeout (10 s), so a quiet spell longer than that is final.
QUIET_PERIOD = 11.0
# Messages the host received and then could not settle (delete, or make visible again), or whose invocation was
# still running when the host stopped: they stay invisible on the queue for the host's in-flight visibility.
UNSETTLED = re.compile(r"settling message (?P<message_id>\S+) failed")
INVOKED = re.compile(
    r"\[(?P<invocation>[0-9a-f-]{36})\] Executing \(Reason='New queue message detected on \S+ "
    r"\(Id=(?P<message_id>[^,]+),"
)
FINISHED = re.compile(r"\[(?P<invocation>[0-9a-f-]{36})\] Executed \(")
ALREADY_PROCESSED = re.compile(r"payment\.failed \S+ for account \S+: already processed")


def event(account_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"evt-{account_id}",
        "type": "payment.failed",
        "source": "/billing-engine",
        "time": "2026-11-24T10:00:00Z",
        "data": {
            "account": {
                "id": account_id,
                "adminPrincipalId": "admin-1",
                "notificationEmail": "billing@contoso.example",
                "locale": "en-US",
                "currency": "EUR",
            },
            "paymentMethod": {"id": "pm-card", "kind": "card", "brand": "visa", "last4": "4242"},
            "reason": "insufficient_funds",
            "charges": [
                {
                    "invoiceId": "inv-1",
                    "subscriptionId": "sub-1",
                    "service": "Azure",
                    "amount": "49.95",
                    "currency": "EUR",
                    "dueDate": "2026-11-20",
                }
            ],
            "subscriptions": [{"id": "sub-1", "name": "Production", "service": "Azure"}],
        },
    }


@pytest.fixture
def disk_azurite(tmp_path: Path) -> Iterator[list[AzuriteProcess]]:
    """Azurite persisting to disk; the test replaces the list's process when it restarts it."""
    processes = [start_azurite(location=tmp_path / "azurite")]
    yield processes
    processes[-1].stop()


def billing_engine_queue(azurite: AzuriteProcess, name: str = PAYMENT_EVENTS_QUEUE) -> QueueClient:
    return QueueClient.from_connection_string(
        azurite.connection_string,
        name,
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )


@dataclass(frozen=True)
class QueueCensus:
    """Where each event that left no trace in storage is: on the queue, in the host's hands, or nowhere (lost).

    Visible messages are read off the queue. An invisible one cannot be read, but the host logs every message it
    failed to settle and every invocation it started and finished; invisible messages beyond those are counted,
    and an event is lost only if no visible, unsettled or cut-off message, nor an unexplained invisible one,
    can account for it."""

    message_count: int
    on_the_queue: list[str]
    held_by_the_host: list[str]
    unaccounted: list[str]
    invisible_unexplained: int
    poisoned: list[str]

    @property
    def lost(self) -> int:
        return max(0, len(self.unaccounted) - self.invisible_unexplained)


def census(
    unprocessed: Iterable[str], messages: dict[str, list[str]], azurite: AzuriteProcess, host_log: str
) -> QueueCensus:
    """`messages` maps each event to the ids of the queue messages sent for it."""
    queue = billing_engine_queue(azurite)
    message_count = queue.get_queue_properties().approximate_message_count or 0
    visible = {message.id for message in queue.receive_messages(messages_per_page=32, visibility_timeout=600)}
    finished = {match["invocation"] for match in FINISHED.finditer(host_log)}
    cut_off = {match["message_id"] for match in INVOKED.finditer(host_log) if match["invocation"] not in finished}
    unsettled = ({match["message_id"] for match in UNSETTLED.finditer(host_log)} | cut_off) - visible
    try:
        poisoned_events = {
            str(json.loads(message.content)["id"])
            for message in billing_engine_queue(azurite, f"{PAYMENT_EVENTS_QUEUE}-poison").peek_messages(32)
        }
    except ResourceNotFoundError:
        poisoned_events = set()
    on_the_queue, held, poisoned, unaccounted = [], [], [], []
    for event_id in unprocessed:
        sent = set(messages[event_id])
        if sent & visible:
            on_the_queue.append(event_id)
        elif sent & unsettled:
            held.append(event_id)
        elif event_id in poisoned_events:
            poisoned.append(event_id)
        else:
            unaccounted.append(event_id)
    invisible_unexplained = max(0, message_count - len(visible) - len(unsettled))
    return QueueCensus(message_count, on_the_queue, held, unaccounted, invisible_unexplained, poisoned)


def email_count(outbox: Path) -> int:
    return sum(1 for _ in outbox.glob("*.eml")) if outbox.exists() else 0


def operator(connection_string: str, outbox: Path) -> Dependencies:
    """What a later timer run would use: the same storage and the same local outbox as the host."""
    settings = Settings(storage_connection_string=SecretStr(connection_string), outbox_dir=outbox)
    return build(settings, clock=FixedClock(datetime.now(UTC) + RECOVERY_DELAY + timedelta(minutes=1)))


def sent_operation_ids(outbox: Path) -> list[str]:
    return [
        str(email.message_from_bytes(path.read_bytes(), policy=default_policy)["X-Pastdue-Operation-Id"])
        for path in outbox.glob("*.eml")
    ]


def test_processing_resumes_after_storage_restarts_mid_run_and_nothing_is_lost(
    disk_azurite: list[AzuriteProcess], tmp_path: Path
) -> None:
    azurite = disk_azurite[0]
    outbox = tmp_path / "outbox"
    host = start_local_host(azurite.connection_string, tmp_path / "host", outbox)
    try:
        queue = billing_engine_queue(azurite)
        run = uuid.uuid4().hex[:8]
        first = [f"acc-restart-{run}-a{n:03d}" for n in range(BEFORE_RESTART)]
        second = [f"acc-restart-{run}-b{n:03d}" for n in range(AFTER_RESTART)]
        messages: dict[str, list[str]] = {}

        def send(account_id: str) -> None:
            document = event(account_id)
            messages.setdefault(document["id"], []).append(queue.send_message(json.dumps(document)).id)

        # GIVEN the host is working through a batch of events
        for account_id in first:
            send(account_id)
        wait_for(lambda: email_count(outbox) >= STOP_AFTER_EMAILS, "the first emails", timeout=90)

        # WHEN storage stops in the middle of it and comes back on the same ports with the same data
        azurite.stop()
        emails_at_stop = email_count(outbox)
        started = time.monotonic()
        time.sleep(1.0)
        disk_azurite[0] = azurite = start_azurite(location=azurite.location, ports=azurite.ports)
        outage = time.monotonic() - started
        queue = billing_engine_queue(azurite)  # the old client's pooled connections went with the old process
        for account_id in second:
            send(account_id)
        resent = first[:10]
        for account_id in resent:  # the billing engine re-sends some it is unsure about
            send(account_id)

        # THEN the host resumes: everything it can see is processed
        total = BEFORE_RESTART + AFTER_RESTART
        last = [email_count(outbox), time.monotonic()]

        def settled() -> bool:
            count = email_count(outbox)
            if count != last[0]:
                last[:] = [count, time.monotonic()]
            return count == total or time.monotonic() - last[1] > QUIET_PERIOD

        wait_for(settled, "processing to finish or go quiet", timeout=180, interval=0.25)
        time.sleep(2.0)  # let the last deletions reach the queue
    finally:
        host.stop()

    deps = operator(azurite.connection_string, outbox)
    processed = [a for a in first + second if deps.accounts.load(a).has_processed(f"evt-{a}") is not None]
    unprocessed = [f"evt-{a}" for a in first + second if a not in processed]
    host_log = host.log_text()
    emails_by_host = email_count(outbox)
    pending = [a for a in processed if deps.accounts.load(a).notifications[0].status is NotificationStatus.PENDING]
    # A delivery storage cut short failed its invocation, so its message is still on the queue (visible, or held by
    # the host that could not settle it): the queue's redelivery is the safety net, and no due entry is written.
    queue_census = census(unprocessed + [f"evt-{a}" for a in pending], messages, azurite, host_log)
    for account_id in pending:  # what the host does when those messages come back (held ones: after 10 minutes)
        deps.apply_payment_failed(PaymentFailedEvent.model_validate(event(account_id)))
    redelivered_emails = email_count(outbox) - emails_by_host
    # A later timer run finishes whatever is still due (an email the outbox refused, a retry): nothing here.
    deps.run_retention(now=deps.clock.now(), time_budget=timedelta(minutes=2))
    emails_by_timer_run = email_count(outbox) - emails_by_host - redelivered_emails

    assert set(second) <= set(processed), "events sent after the restart must all be processed"
    assert queue_census.lost == 0, f"unprocessed and not on the queue: {queue_census}"
    assert not queue_census.poisoned
    for account_id in processed:
        # committed effects survived the restart whole: state, marker, and its one notification, now sent
        partition = deps.accounts.load(account_id)
        [subscription] = partition.all(Subscription)
        assert subscription.state is SubscriptionState.PAST_DUE
        assert [m.event_id for m in partition.all(ProcessedEvent)] == [f"evt-{account_id}"]
        [notification] = partition.notifications
        assert notification.status is NotificationStatus.SENT
    operation_ids = sent_operation_ids(outbox)
    assert len(operation_ids) == len(set(operation_ids)) == len(processed), "exactly one email per processed event"
    assert "Traceback" not in host_log.split("Host started", 1)[0]
    publish(
        "storage_restart",
        {
            "events": len(messages),
            "messages_sent": sum(len(ids) for ids in messages.values()),
            "duplicates_sent_after_restart": len(resent),
            "duplicates_acknowledged_by_host": len(ALREADY_PROCESSED.findall(host_log)),
            "emails_before_stop": emails_at_stop,
            "outage_seconds": round(outage, 1),
            "processed": len(processed),
            "unprocessed_visible_on_queue": len(queue_census.on_the_queue),
            "unprocessed_held_by_host_invisible": len(queue_census.held_by_the_host),
            "unprocessed_invisible_unexplained": len(queue_census.unaccounted),
            "in_flight_at_stop_still_on_queue": len(unprocessed) + len(pending) - queue_census.lost,
            "queue_message_count_after": queue_census.message_count,
            "set_aside": len(queue_census.poisoned),
            "notifications_left_pending_by_the_outage": len(pending),
            "emails_sent_by_host": emails_by_host,
            "emails_sent_on_redelivery": redelivered_emails,
            "emails_added_by_next_timer_run": emails_by_timer_run,
            "emails_total": len(operation_ids),
            "host_logged_storage_unreachable": "failed, retrying" in host_log,
            "lost": queue_census.lost,
        },
    )

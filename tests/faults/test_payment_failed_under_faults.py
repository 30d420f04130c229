"""1,000 `payment.failed` events, delivered 1-3 times each in shuffled order, while storage fails a few percent of
requests: every effect happens exactly once and no message is lost.

The queue is simulated with the host's semantics (at-least-once, an attempt that raises is delivered again with
a higher dequeue count, after 5 attempts the message goes to the poison queue); every attempt calls the real
queue function with a real `azure.functions.queue.QueueMessage`. Storage is the real Azurite behind a fault proxy.
"""

from __future__ import annotations

import email
import json
import logging
import queue
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage
from pydantic import SecretStr

from devhost.azurite import AzuriteProcess, connection_string
from functions.payment_failed_queue import handler
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import AlertKind, ChargeStatus, PaymentMethodStatus, ProcessedEvent, Subscription
from shared.domain.outbox import NotificationStatus
from shared.settings import Settings
from tests.faults.fault_proxy import FAULT_KINDS, FaultProxy
from tests.faults.published import publish

pytestmark = pytest.mark.azurite

EVENT_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
ACCOUNTS = 200
EVENTS_PER_ACCOUNT = 5
FAULT_RATE = 0.03
SEED = 20261124
WORKERS = 8
MAX_DEQUEUE_COUNT = 5
SERVICE_LOGGER = "shared.services.payment_failed"


def payment_failed_event(account_id: str, number: int) -> dict[str, Any]:
    """Event `number` of an account: one unpaid invoice of sub-1 (odd) or sub-2 (even); sub-3 shares the card."""
    return {
        "specversion": "1.0",
        "id": f"evt-{account_id}-{number}",
        "type": "payment.failed",
        "source": "/billing-engine",
        "time": (EVENT_AT - timedelta(hours=EVENTS_PER_ACCOUNT - number)).isoformat(),
        "data": {
            "account": {
                "id": account_id,
                "adminPrincipalId": "admin-1",
                "notificationEmail": "billing@contoso.example",
                "locale": "en-US" if number % 2 else "nl-NL",
                "currency": "EUR",
            },
            "paymentMethod": {"id": "pm-card", "kind": "card", "brand": "visa", "last4": "4242"},
            "reason": "insufficient_funds",
            "charges": [
                {
                    "invoiceId": f"inv-{number}",
                    "subscriptionId": "sub-1" if number % 2 else "sub-2",
                    "service": "Azure",
                    "amount": f"{number * 10}.00",
                    "currency": "EUR",
                    "dueDate": "2026-11-20",
                }
            ],
            "subscriptions": [{"id": f"sub-{n}", "name": f"Workload {n}", "service": "Azure"} for n in (1, 2, 3)],
        },
    }


@dataclass(frozen=True)
class Delivery:
    body: bytes
    event_id: str
    message_id: str
    dequeue_count: int = 1


@dataclass
class QueueRun:
    """What happened to the deliveries: attempts, failures by type, what went to the poison queue and why."""

    work: queue.Queue[Delivery]
    outstanding: int
    successes: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    poisoned: list[tuple[Delivery, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def attempts(self) -> int:
        return self.successes + sum(self.failures.values())

    def attempt(self, delivery: Delivery) -> None:
        """One delivery to the queue function; a raising attempt comes back with a higher dequeue count."""
        message = QueueMessage(
            id=delivery.message_id, body=delivery.body, dequeue_count=delivery.dequeue_count, pop_receipt="r"
        )
        try:
            handler.payment_failed(message)
        except Exception as error:
            with self.lock:
                self.failures[type(error).__name__] += 1
                if delivery.dequeue_count >= MAX_DEQUEUE_COUNT:
                    self.poisoned.append((delivery, f"{type(error).__name__} on attempt {delivery.dequeue_count}"))
                    self.outstanding -= 1
                    return
            self.work.put(replace(delivery, dequeue_count=delivery.dequeue_count + 1))
        else:
            with self.lock:
                self.successes += 1
                self.outstanding -= 1

    def finished(self) -> bool:
        with self.lock:
            return self.outstanding == 0


def run_queue(deliveries: list[Delivery], workers: int) -> QueueRun:
    """Deliver every message at least once, like the host: a raising attempt is delivered again, up to 5 times."""
    run = QueueRun(work=queue.Queue(), outstanding=len(deliveries))
    for delivery in deliveries:
        run.work.put(delivery)

    def worker() -> None:
        while not run.finished():
            try:
                delivery = run.work.get(timeout=0.1)
            except queue.Empty:
                continue
            run.attempt(delivery)

    threads = [threading.Thread(target=worker, name=f"queue-worker-{n}") for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return run


class OutcomeLog(logging.Handler):
    """Counts how the service acknowledged each successful attempt (applied, duplicate, late) from its log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.outcomes: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        text = str(record.msg)
        if "already processed" in text:
            self.outcomes["duplicate"] += 1
        elif "acknowledged late" in text:
            self.outcomes["late"] += 1
        elif "past due" in text:
            self.outcomes["applied"] += 1


@pytest.fixture
def outcome_log() -> Iterator[OutcomeLog]:
    logger = logging.getLogger(SERVICE_LOGGER)
    capture = OutcomeLog()
    previous = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(capture)
    yield capture
    logger.removeHandler(capture)
    logger.setLevel(previous)


@pytest.fixture
def fault_proxy(azurite: AzuriteProcess) -> Iterator[FaultProxy]:
    proxy = FaultProxy(azurite.table_port, rate=FAULT_RATE, seed=SEED).start()
    yield proxy
    proxy.stop()


def app_dependencies(storage: str, outbox: Path, clock: FixedClock) -> Dependencies:
    settings = Settings(
        storage_connection_string=SecretStr(storage),
        outbox_dir=outbox,
        lifecycle_queue=f"lifecycle-{uuid.uuid4().hex[:12]}",
    )
    return build(settings, clock=clock)


def sent_operation_ids(outbox: Path) -> list[str]:
    ids = []
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=default_policy)
        ids.append(str(message["X-Pastdue-Operation-Id"]))
    return ids


def test_every_event_takes_effect_exactly_once_despite_duplicates_reordering_and_storage_faults(
    azurite: AzuriteProcess,
    fault_proxy: FaultProxy,
    outcome_log: OutcomeLog,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN 200 accounts with 5 events each, every event delivered 1-3 times, all shuffled together
    rng = random.Random(SEED)
    clock = FixedClock(EVENT_AT)
    outbox = tmp_path / "outbox"
    proxied = connection_string(azurite.blob_port, azurite.queue_port, fault_proxy.port)
    deps = app_dependencies(proxied, outbox, clock)
    checker = app_dependencies(azurite.connection_string, tmp_path / "unused", clock)
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    run_id = uuid.uuid4().hex[:8]
    account_ids = [f"acc-fault-{run_id}-{n:03d}" for n in range(ACCOUNTS)]
    deliveries = []
    for account_id in account_ids:
        for number in range(1, EVENTS_PER_ACCOUNT + 1):
            document = payment_failed_event(account_id, number)
            body = json.dumps(document).encode()
            for _ in range(rng.randint(1, 3)):
                deliveries.append(Delivery(body, document["id"], str(uuid.UUID(int=rng.getrandbits(128)))))
    rng.shuffle(deliveries)
    events = ACCOUNTS * EVENTS_PER_ACCOUNT

    # WHEN they are processed by 8 workers while 3% of storage requests fail
    started = time.monotonic()
    fault_proxy.enabled = True
    run = run_queue(deliveries, WORKERS)
    fault_proxy.enabled = False
    # An operator re-submits what reached the poison queue once the cause (the faults) is gone.
    resubmitted = run_queue([replace(d, dequeue_count=1) for d, _ in run.poisoned], WORKERS)
    partitions = {a: checker.accounts.load(a) for a in account_ids}
    pending_after_queue = sum(
        1 for p in partitions.values() for n in p.notifications if n.status is NotificationStatus.PENDING
    )
    recovery_emails = 0
    if pending_after_queue:
        # The safety net: every applied event put a recovery entry on the due index before its commit.
        emails_before_recovery = sum(1 for _ in outbox.glob("*.eml"))
        checker.run_retention(now=EVENT_AT + timedelta(minutes=10), time_budget=timedelta(minutes=2))
        recovery_emails = sum(1 for _ in outbox.glob("*.eml")) - emails_before_recovery
        partitions = {a: checker.accounts.load(a) for a in account_ids}
    seconds = time.monotonic() - started

    # THEN every event was processed (or set aside with a reason), and each account is exactly as expected
    assert not resubmitted.poisoned
    assert all(reason for _, reason in run.poisoned)
    stored_markers: set[str] = set()
    for account_id, partition in partitions.items():
        markers = {m.event_id for m in partition.all(ProcessedEvent)}
        assert markers == {f"evt-{account_id}-{n}" for n in range(1, EVENTS_PER_ACCOUNT + 1)}
        stored_markers |= markers
        states = {s.id: s.state for s in partition.all(Subscription)}
        assert states == {
            "sub-1": SubscriptionState.PAST_DUE,
            "sub-2": SubscriptionState.PAST_DUE,
            "sub-3": SubscriptionState.ENABLED,
        }
        amounts = {c.invoice_id: (c.amount.amount, c.status) for c in partition.charges}
        assert amounts == {f"inv-{n}": (f"{n * 10}.00", ChargeStatus.OUTSTANDING) for n in range(1, 6)}
        assert [m.status for m in partition.payment_methods] == [PaymentMethodStatus.FAILED]
        [alert] = partition.alerts
        assert alert.kind is AlertKind.PAYMENT_FAILED
        assert alert.is_open
        assert set(alert.subscription_ids) == {"sub-1", "sub-2"}
        assert len(partition.notifications) == EVENTS_PER_ACCOUNT
        assert all(n.status is NotificationStatus.SENT for n in partition.notifications)
    # exactly one email per notification, and nothing rejected as bad input
    operation_ids = sent_operation_ids(outbox)
    assert len(operation_ids) == events
    assert len(set(operation_ids)) == events
    rejected = [r for r in checker.list_rejections() if r.event_id and run_id in r.event_id]
    assert not rejected
    sent_events = {d.event_id for d in deliveries}
    assert len(stored_markers) == len(sent_events) == events

    counts = {
        "accounts": sum(1 for partition in partitions.values() if partition.exists),
        "events": len(sent_events),
        "deliveries": len(deliveries),
        "duplicates_delivered": len(deliveries) - len(sent_events),
        "attempts": run.attempts + resubmitted.attempts,
        "failed_attempts_redelivered": sum(run.failures.values()),
        "failed_attempts_by_error": dict(run.failures),
        "storage_requests": fault_proxy.counts["requests"],
        "faults_injected": fault_proxy.faults,
        "faults_by_kind": {kind: fault_proxy.counts[kind] for kind in FAULT_KINDS},
        "fault_rate": FAULT_RATE,
        "fault_share_of_requests": round(fault_proxy.faults / max(fault_proxy.counts["requests"], 1), 4),
        "acknowledged_applied": outcome_log.outcomes["applied"],
        "acknowledged_duplicate": outcome_log.outcomes["duplicate"],
        "acknowledged_late": outcome_log.outcomes["late"],
        "poisoned_then_resubmitted": len(run.poisoned),
        "processed": len(stored_markers & sent_events),
        "set_aside_with_reason": len(rejected) + len(resubmitted.poisoned),
        "lost": len(sent_events - stored_markers),
        "emails_sent": len(operation_ids),
        "emails_sent_by_recovery_run": recovery_emails,
        "notifications_pending_after_queue": pending_after_queue,
        "seconds": round(seconds, 1),
    }
    publish("payment_failed_at_least_once", counts)
    print(json.dumps(counts, indent=2))

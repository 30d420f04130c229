"""Storage round trips per operation, counted exactly, beside the model each one should follow.

Each operation runs through its function entry point (queue, HTTP, timer) with `shared.bootstrap.build`
dependencies whose request hook counts every request the SDK sends, retries included.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from bench.counting import RequestTally
from bench.environment import Workbench, fixed_clock
from bench.report import RoundTrips
from bench.seeding import (
    balance_of,
    new_account_id,
    past_due_partition,
    payment_failed_document,
)
from bench.wiring import queue_message, serving, settle_request
from shared.adapters.lifecycle_queue import pack_batches
from shared.bootstrap import Dependencies
from shared.domain.lifecycle import TransitionReason
from shared.domain.lifecycle_events import MAX_SUBSCRIPTIONS_PER_EVENT, payment_method_replaced, subscription_enabled
from shared.domain.settlement import Settlement

EVENT_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SETTLED_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def pages(rows: int, page: int = 1000) -> int:
    return max(1, math.ceil(rows / page))


def batches(entities: int) -> int:
    return math.ceil(entities / 100)


# Each email sent is remembered in table `sentemails` (one insert), so that its delivery report finds its account.
SENT_EMAIL_INDEX = 1


def payment_failed_model(subscriptions: int) -> tuple[str, int]:
    """Read the partition, 1 due-index upsert (the next review; no safety-net entry: the queue's redelivery is the
    net), the commit in batches of 100, the sent-email index insert, and the delivery record (one transaction on
    the committed partition)."""
    written = 2 * subscriptions + 5  # account, card, S subscriptions, S charges, alert, notification, marker
    expected = pages(0) + 1 + batches(written) + SENT_EMAIL_INDEX + 1
    return "4 + ⌈W/100⌉, W = 2S+5 rows written (new account: 1 read page; 1 of the 4: the sent-email index)", expected


def payment_failed_round_trips(bench: Workbench, sizes: Sequence[int]) -> list[RoundTrips]:
    from functions.payment_failed_queue.handler import payment_failed

    tally = RequestTally()
    deps = bench.deps(clock=fixed_clock(EVENT_AT), tally=tally)
    rows = []
    with serving(deps):
        for subscriptions in sizes:
            account_id = new_account_id()
            document = payment_failed_document(account_id, subscriptions=subscriptions, charged=subscriptions)
            message = queue_message(document)
            tally.take()
            started = time.perf_counter()
            payment_failed(message)
            seconds = time.perf_counter() - started
            requests, breakdown = tally.take()
            bench.accounts += 1
            model, expected = payment_failed_model(subscriptions)
            rows.append(
                RoundTrips("payment.failed", {"S": subscriptions}, requests, breakdown, model, expected, seconds)
            )
    return rows


def settlement_model(subscriptions: int, queue_messages: int) -> tuple[str, int]:
    """Fixed 6 (webhook id, 1 due-index upsert: the charge in flight, which is the delivery's safety net too, the
    gateway's ledger row, the claim transaction, the receipt's sent-email index insert, and that due entry removed
    once the delivery went through), one partition read
    (the success commit reuses the claim's ETags, delivery the success commit's), the success commit in batches of
    100, the delivery record, and the queue messages the lifecycle events are packed into (64 KiB each)."""
    before = 2 * subscriptions + 3  # account, card, S subscriptions, S charges, alert
    parts = math.ceil(subscriptions / MAX_SUBSCRIPTIONS_PER_EVENT)  # payment_method.replaced events
    events = subscriptions + parts  # subscription.enabled per re-enabled subscription, payment_method.replaced
    success = 2 * subscriptions + events + 8  # S charges, S subscriptions, the events, methods, alert, receipt...
    delivery_record = events + 2  # account row, receipt marked sent, published events deleted
    expected = 5 + SENT_EMAIL_INDEX + pages(before) + batches(success) + batches(delivery_record) + queue_messages
    model = "6 + ⌈R/1000⌉ read + ⌈(3S+8+P)/100⌉ + ⌈(S+P+2)/100⌉ + M, P = ⌈S/250⌉, M = messages of the S+P events"
    return model, expected


def lifecycle_messages_of(deps: Dependencies, account_id: str, settlement_id: str) -> int:
    """How many queue messages the events of a succeeded settlement pack into (the partition read after the run)."""
    partition = deps.accounts.load(account_id)
    settlement = partition.get(Settlement, settlement_id)
    assert settlement is not None
    subscriptions = {s.id: s for s in partition.subscriptions}
    events = [
        subscription_enabled(
            account_id, subscriptions[sid], cause=settlement, reason=TransitionReason.BALANCE_SETTLED, at=SETTLED_AT
        )
        for sid in settlement.reenabled_subscription_ids
    ]
    events += payment_method_replaced(account_id, settlement, at=SETTLED_AT)
    return len(pack_batches(events).batches)


def settlement_round_trips(bench: Workbench, sizes: Sequence[int]) -> list[RoundTrips]:
    from functions.settle_http.routes import settle

    tally = RequestTally()
    deps = bench.deps(clock=fixed_clock(SETTLED_AT), tally=tally)
    rows = []
    with serving(deps):
        # A first settlement creates the lifecycle queue (once per process); it is not part of the figures.
        warm_up = new_account_id()
        deps.accounts.commit(past_due_partition(warm_up, subscriptions=1, failed_at=EVENT_AT))
        settle(settle_request(warm_up, "sub-0001", balance_of(1).amount, SETTLED_AT))
        bench.accounts += 1
        for subscriptions in sizes:
            account_id = new_account_id()
            deps.accounts.commit(past_due_partition(account_id, subscriptions=subscriptions, failed_at=EVENT_AT))
            bench.accounts += 1
            request = settle_request(account_id, "sub-0001", balance_of(subscriptions).amount, SETTLED_AT)
            tally.take()
            started = time.perf_counter()
            response = settle(request)
            seconds = time.perf_counter() - started
            requests, breakdown = tally.take()
            if response.status_code != 200:
                raise RuntimeError(f"settlement answered {response.status_code}: {response.get_body()[:300]!r}")
            settlement_id = json.loads(response.get_body())["settlementId"]
            model, expected = settlement_model(subscriptions, lifecycle_messages_of(deps, account_id, settlement_id))
            rows.append(RoundTrips("settlement", {"S": subscriptions}, requests, breakdown, model, expected, seconds))
    return rows

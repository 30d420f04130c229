"""Storage round trips per operation, counted exactly, beside the model each one should follow.

Each operation runs through its function entry point (queue, HTTP, timer) with `shared.bootstrap.build`
dependencies whose request hook counts every request the SDK sends, retries included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from bench.counting import RequestTally
from bench.environment import Workbench, fixed_clock
from bench.report import RoundTrips
from bench.seeding import (
    ADMIN,
    balance_of,
    new_account_id,
    past_due_partition,
    payment_failed_document,
)
from bench.wiring import queue_message, serving, settle_body, settle_request

EVENT_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
SETTLED_AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def pages(rows: int, page: int = 1000) -> int:
    return max(1, math.ceil(rows / page))


def batches(entities: int) -> int:
    return math.ceil(entities / 100)


def payment_failed_model(subscriptions: int) -> tuple[str, int]:
    """Read the partition, 1 due-index transaction (recovery and next review share the account's shard), the commit
    in batches of 100, and the delivery record (one transaction on the committed partition)."""
    written = 2 * subscriptions + 5  # account, card, S subscriptions, S charges, alert, notification, marker
    expected = pages(0) + 1 + batches(written) + 1
    return "3 + ⌈W/100⌉, W = 2S+5 rows written (new account: 1 read page)", expected


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


def settlement_model(subscriptions: int) -> tuple[str, int]:
    """Fixed 6 (webhook id, 2 due-index upserts, gateway look-up and record, claim transaction), 3 partition reads,
    the success commit in batches of 100, the delivery record, and one queue message per lifecycle event."""
    before = 2 * subscriptions + 3  # account, card, S subscriptions, S charges, alert
    claimed = before + 3  # + settlement, idempotency record, the new card
    after = claimed + 1 + subscriptions + 1  # + receipt, S+1 lifecycle events
    success = 3 * subscriptions + 9  # S charges, S subscriptions, S+1 events, methods, alert, receipt, settlement...
    events = subscriptions + 1  # subscription.enabled per re-enabled subscription, payment_method.replaced
    delivery_record = events + 2  # account row, receipt marked sent, published events deleted
    reads = pages(before) + pages(claimed) + pages(after)
    expected = 6 + reads + batches(success) + batches(delivery_record) + events
    return "6 + 3 reads (⌈R/1000⌉ each) + ⌈(3S+9)/100⌉ + ⌈(S+3)/100⌉ + (S+1) queue messages", expected


def settlement_round_trips(bench: Workbench, sizes: Sequence[int]) -> list[RoundTrips]:
    from functions.settle_http.routes import settle

    tally = RequestTally()
    deps = bench.deps(clock=fixed_clock(SETTLED_AT), tally=tally)
    rows = []
    with serving(deps):
        # A first settlement creates the lifecycle queue (once per process); it is not part of the figures.
        warm_up = new_account_id()
        deps.accounts.commit(past_due_partition(warm_up, subscriptions=1, failed_at=EVENT_AT))
        settle(settle_request(warm_up, settle_body("sub-0001", balance_of(1).amount, ADMIN), SETTLED_AT))
        bench.accounts += 1
        for subscriptions in sizes:
            account_id = new_account_id()
            deps.accounts.commit(past_due_partition(account_id, subscriptions=subscriptions, failed_at=EVENT_AT))
            bench.accounts += 1
            body = settle_body("sub-0001", balance_of(subscriptions).amount, ADMIN)
            request = settle_request(account_id, body, SETTLED_AT)
            tally.take()
            started = time.perf_counter()
            response = settle(request)
            seconds = time.perf_counter() - started
            requests, breakdown = tally.take()
            if response.status_code != 200:
                raise RuntimeError(f"settlement answered {response.status_code}: {response.get_body()[:300]!r}")
            model, expected = settlement_model(subscriptions)
            rows.append(RoundTrips("settlement", {"S": subscriptions}, requests, breakdown, model, expected, seconds))
    return rows

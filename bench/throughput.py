"""Throughput and latency through the local host, each beside a floor of bare SDK calls measured in the same run."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import requests
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from bench.environment import Workbench, fixed_clock
from bench.floors import EventFloor, SettlementFloor, wait_until
from bench.localhost import FUNCTION_KEY, LocalHost, start_local_host
from bench.report import Latency, Throughput
from bench.seeding import ADMIN, balance_of, commit_all, new_account_id, past_due_partition, payment_failed_document
from bench.wiring import settle_body, signed_headers
from devhost.azurite import REPO_ROOT
from devhost.host_config import load_host_config
from shared.events.decoding import PAYMENT_EVENTS_QUEUE

SENDERS = 8
HTTP_CLIENTS = 8
SETTLEMENT_SUBSCRIPTIONS = 2  # two subscriptions share the failed card and both owe: one payment re-enables both
FAILED_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
EVENT_TIMEOUT_PER_ITEM = 2.0


def _queue(connection_string: str, name: str) -> QueueClient:
    queue = QueueClient.from_connection_string(connection_string, name, message_encode_policy=TextBase64EncodePolicy())
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def _send_all(queue: QueueClient, documents: list[dict[str, Any]]) -> None:
    with ThreadPoolExecutor(SENDERS) as pool:
        list(pool.map(lambda document: queue.send_message(json.dumps(document)), documents))


def event_throughput(bench: Workbench, count: int, progress: Callable[[str], None]) -> Throughput:
    """`payment.failed` events per second through the host's queue trigger, and through the floor consumer."""
    options = load_host_config(REPO_ROOT).queues
    outbox = bench.directory / "host-outbox"
    queue = _queue(bench.connection_string, PAYMENT_EVENTS_QUEUE)
    progress(f"events through the local host: {count}")
    with start_local_host(bench.connection_string, bench.directory / "host-events", outbox) as host:
        _send_all(queue, [payment_failed_document(new_account_id())])
        wait_until(lambda: bench.eml_count(outbox) >= 1, 60, "the warm-up event", interval=0.05)
        documents = [payment_failed_document(new_account_id()) for _ in range(count)]
        started = time.perf_counter()
        _send_all(queue, documents)
        wait_until(lambda: bench.eml_count(outbox) >= count + 1, count * EVENT_TIMEOUT_PER_ITEM, "the events")
        wait_until(lambda: _queue_empty(queue), 60, "the queue to drain", interval=0.05)
        host_seconds = time.perf_counter() - started
        _note_failed_invocations(bench, host, "payment.failed events")
    bench.accounts += count + 1
    progress(f"events through the floor consumer: {count}")
    floor_queue = _queue(bench.connection_string, "bench-floor-events")
    floor = EventFloor(bench.connection_string, "bench-floor-events", options.batch_size, options.new_batch_threshold)
    floor.start()
    try:
        documents = [payment_failed_document(new_account_id()) for _ in range(count)]
        started = time.perf_counter()
        _send_all(floor_queue, documents)
        wait_until(lambda: floor.processed >= count, count * EVENT_TIMEOUT_PER_ITEM, "the floor consumer")
        floor_seconds = time.perf_counter() - started
    finally:
        floor.stop()
    bench.accounts += count
    return Throughput(
        operation="payment.failed events",
        count=count,
        concurrency=options.batch_size + options.new_batch_threshold,
        per_second=count / host_seconds,
        floor_per_second=count / floor_seconds,
        floor="receive + 1 query + 1 transaction + delete",
    )


def _queue_empty(queue: QueueClient) -> bool:
    return queue.get_queue_properties().approximate_message_count == 0


def _note_failed_invocations(bench: Workbench, host: LocalHost, what: str) -> None:
    """Failed invocations are retried (queue) or repeated (HTTP) and still counted in the time; say how many."""
    failures = host.log.read_text(encoding="utf-8", errors="replace").count("Executed (Failed")
    if failures:
        bench.notes.append(f"{what}: {failures} invocation(s) failed and were retried (see the host log)")


def _seed_settlement_accounts(bench: Workbench, count: int) -> list[str]:
    deps = bench.deps(clock=fixed_clock(FAILED_AT))
    account_ids = [new_account_id("acc-stl") for _ in range(count)]
    commit_all(
        deps.accounts,
        (past_due_partition(a, subscriptions=SETTLEMENT_SUBSCRIPTIONS, failed_at=FAILED_AT) for a in account_ids),
    )
    bench.accounts += count
    return account_ids


def _post_settlement(session: requests.Session, host: LocalHost, account_id: str, attempts: int = 3) -> float:
    """One settlement as the portal makes it; a 503 (storage did not answer) is repeated with the same key."""
    key = f"bench-{account_id}"
    amount = balance_of(SETTLEMENT_SUBSCRIPTIONS).amount
    body = settle_body(account_id, "sub-0001", amount, principal_id=ADMIN, idempotency_key=key)
    started = time.perf_counter()
    for attempt in range(1, attempts + 1):
        headers = {
            **signed_headers(body, datetime.now(UTC)),
            "idempotency-key": key,
            "x-functions-key": FUNCTION_KEY,
        }
        response = session.post(f"{host.base_url}/api/accounts/{account_id}/settlement", data=body, headers=headers)
        if response.status_code == 503 and attempt < attempts:
            continue
        if response.status_code != 200 or response.json().get("status") != "succeeded":
            raise RuntimeError(f"settlement of {account_id} answered {response.status_code}: {response.text[:300]}")
        break
    return time.perf_counter() - started


def settlement_figures(
    bench: Workbench, count: int, latency_count: int, progress: Callable[[str], None]
) -> tuple[Throughput, Latency]:
    """Settlements per second with concurrent clients, and one client's latencies, through HTTP and the floor."""
    progress(f"seeding {2 * (count + latency_count) + 1} accounts for settlements")
    host_accounts = _seed_settlement_accounts(bench, count + latency_count + 1)
    floor_accounts = _seed_settlement_accounts(bench, count + latency_count)
    progress(f"settlements through the local host: {count} concurrent, {latency_count} one at a time")
    with start_local_host(
        bench.connection_string, bench.directory / "host-http", bench.directory / "http-outbox"
    ) as host:
        local = _sessions()
        _post_settlement(local(), host, host_accounts[0])
        started = time.perf_counter()
        with ThreadPoolExecutor(HTTP_CLIENTS) as pool:
            list(pool.map(lambda a: _post_settlement(local(), host, a), host_accounts[1 : count + 1]))
        host_seconds = time.perf_counter() - started
        latencies = [_post_settlement(local(), host, a) for a in host_accounts[count + 1 :]]
        _note_failed_invocations(bench, host, "settlements")
    progress("settlements through the floor")
    floor = SettlementFloor(bench.connection_string)
    started = time.perf_counter()
    with ThreadPoolExecutor(HTTP_CLIENTS) as pool:
        list(pool.map(floor.settle, floor_accounts[:count]))
    floor_seconds = time.perf_counter() - started
    floor_latencies = []
    for account_id in floor_accounts[count:]:
        started = time.perf_counter()
        floor.settle(account_id)
        floor_latencies.append(time.perf_counter() - started)
    throughput = Throughput(
        operation="settlements (HTTP)",
        count=count,
        concurrency=HTTP_CLIENTS,
        per_second=count / host_seconds,
        floor_per_second=count / floor_seconds,
        floor="webhook insert + 1 query + 2 transactions + gateway insert",
    )
    latency = Latency(
        operation="settlement (HTTP)",
        count=len(latencies),
        p50_ms=percentile(latencies, 50) * 1000,
        p95_ms=percentile(latencies, 95) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        max_ms=max(latencies) * 1000,
        floor_p50_ms=percentile(floor_latencies, 50) * 1000,
        floor="the same bare SDK calls, one at a time",
    )
    return throughput, latency


def _sessions() -> Callable[[], requests.Session]:
    import threading

    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session  # type: ignore[no-any-return]

    return session


def percentile(values: list[float], rank: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(rank / 100 * len(ordered)) - 1)]

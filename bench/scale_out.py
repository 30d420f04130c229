"""Scale-out figures: the scheduler's cost against D, D accounts reviewed by 1, 2 and 4 local hosts, and a firing
with nothing due before and after N `payment.failed` events.

1. The timer's invocation (`start_retention_pass`) at D due entries: counted with the request hook that `build`
   gives the table and queue clients alike, so the queue sends are in the count.
2. D past-due accounts (their 7-day reminder due) reviewed by N `python -m devhost` processes on one Azurite, as
   competing consumers of the work queue: the pass is started here, the hosts' workers do the rest. Done when
   the hosts' logs account for D reviews; then the due index and the outbox are checked.
3. A whole firing with nothing due (start pass, every sweep, the housekeeping) before and after N events whose
   emails went out: the work items are run here by the worker's own `handle_work` on counted dependencies.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from bench.counting import RequestTally
from bench.environment import Workbench, fixed_clock, load_average, workbench
from bench.localhost import LocalHost, start_local_host
from bench.report import HostsRun, QuietFiring, ScaleOut, SchedulerRun
from bench.seeding import new_account_id, payment_failed_document, seed_due_accounts, write_due_entries
from functions.retention_worker.handler import handle_work
from shared.bootstrap import Dependencies
from shared.domain.payment_events import PaymentFailedEvent
from shared.domain.retention_work import RETENTION_WORK_QUEUE, decode_work
from shared.services.ports import DueEntry

SCHEDULER_AT = datetime(2027, 3, 1, 2, 0, tzinfo=UTC)
EVENTS_AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
# Before the events' first reminder (7 days on): nothing is due at either firing.
QUIET_FIRINGS = (EVENTS_AT + timedelta(hours=1), EVENTS_AT + timedelta(hours=2))
EVENT_WORKERS = 16
HOSTS_TIMEOUT = 900.0
REVIEWED = re.compile(r"retention review of \d+ account\(s\): \{[^\n]*'accounts_reviewed': (?P<count>\d+)")
WORKER_DONE = re.compile(r"\[retention_worker\] \[[^\]]+\] Executed \(Succeeded")


@dataclass(frozen=True)
class ScaleOutPlan:
    scheduler_due: tuple[int, ...]
    hosts_due: int
    host_counts: tuple[int, ...]
    quiet_events: int


def scale_out_figures(plan: ScaleOutPlan, progress: Callable[[str], None], notes: list[str]) -> ScaleOut:
    figures = ScaleOut()
    with workbench("scale-out-scheduler") as bench:
        figures.scheduler = scheduler_runs(bench, plan.scheduler_due, progress)
        notes += bench.notes
    with workbench("scale-out-quiet") as bench:
        figures.quiet = quiet_firings(bench, plan.quiet_events, progress)
        notes += bench.notes
    for hosts in plan.host_counts:
        with workbench(f"scale-out-{hosts}-hosts") as bench:
            figures.hosts.append(hosts_run(bench, hosts, plan.hosts_due, progress))
            notes += bench.notes
    single = next((row for row in figures.hosts if row.hosts == 1), None)
    if single is not None:
        figures.per_worker_rate = single.per_second
        for row in figures.hosts:
            row.speedup = round(row.per_second / single.per_second, 2) if single.per_second else 0.0
    notes += scale_out_notes(figures)
    return figures


def scheduler_runs(bench: Workbench, levels: tuple[int, ...], progress: Callable[[str], None]) -> list[SchedulerRun]:
    """The timer's own invocation at each level of D (due-index entries; the scheduler reads no account)."""
    tally = RequestTally()
    deps = bench.deps(clock=fixed_clock(SCHEDULER_AT), tally=tally)
    # The first pass of a process also creates the work queue and the shard-count row: not part of any level.
    deps.start_retention_pass(SCHEDULER_AT)
    warm_up, _ = tally.take()
    bench.notes.append(f"scheduler: a first, uncounted pass made {warm_up} requests (queue and shard row created)")
    rows: list[SchedulerRun] = []
    seeded = 0
    for due in sorted(levels):
        progress(f"scheduler: seeding {due - seeded:,} due entries (to D={due:,})")
        entries = [DueEntry(new_account_id("acc-due"), SCHEDULER_AT - timedelta(hours=1)) for _ in range(due - seeded)]
        write_due_entries(deps.tables, entries)
        seeded = due
        assert sum(1 for _ in deps.due.due(SCHEDULER_AT)) == due
        clear_queue(bench.connection_string)
        tally.take()
        started = time.perf_counter()
        passed = deps.start_retention_pass(SCHEDULER_AT)
        seconds = time.perf_counter() - started
        requests, breakdown = tally.take()
        rows.append(SchedulerRun(due, requests, breakdown, round(seconds * 1000, 1), passed.items_sent))
    clear_queue(bench.connection_string)
    return rows


def quiet_firings(bench: Workbench, events: int, progress: Callable[[str], None]) -> list[QuietFiring]:
    """A firing with nothing due, before and after `events` payment.failed events whose emails went out."""
    tally = RequestTally()
    deps = bench.deps(clock=fixed_clock(EVENTS_AT), tally=tally)
    deps.start_retention_pass(QUIET_FIRINGS[0] - timedelta(minutes=15))
    run_work_queue(bench.connection_string, deps)  # warm-up: the queue and the shard-count row exist from here
    tally.take()
    rows = [quiet_firing(bench, deps, tally, QUIET_FIRINGS[0], events_before=0)]
    progress(f"quiet firing: applying {events:,} payment.failed events")
    emails_before = bench.eml_count()
    started = time.perf_counter()
    apply_events(deps, events)
    seconds = time.perf_counter() - started
    emails = bench.eml_count() - emails_before
    bench.notes.append(
        f"quiet firing: {events:,} payment.failed events applied in {seconds:.1f} s, {emails:,} emails in the outbox"
    )
    if emails != events:
        raise RuntimeError(f"{events:,} events sent {emails:,} emails")
    tally.take()
    rows.append(quiet_firing(bench, deps, tally, QUIET_FIRINGS[1], events_before=events))
    return rows


def quiet_firing(
    bench: Workbench, deps: Dependencies, tally: RequestTally, at: datetime, *, events_before: int
) -> QuietFiring:
    started = time.perf_counter()
    deps.start_retention_pass(at)
    kinds = run_work_queue(bench.connection_string, deps)
    seconds = time.perf_counter() - started
    requests, breakdown = tally.take()
    if "review" in kinds:
        raise RuntimeError(f"the firing at {at} found something due: {kinds}")
    return QuietFiring(events_before, requests, breakdown, round(seconds * 1000, 1), len(kinds))


def apply_events(deps: Dependencies, count: int) -> None:
    when = EVENTS_AT.date().isoformat()

    def apply(_: int) -> None:
        document = payment_failed_document(new_account_id("acc-evt"), subscriptions=1, when=when)
        result = deps.apply_payment_failed(PaymentFailedEvent.model_validate(document))
        if not result.emails_sent:
            raise RuntimeError("a payment.failed event sent no email")

    with ThreadPoolExecutor(EVENT_WORKERS) as pool:
        list(pool.map(apply, range(count)))


def hosts_run(bench: Workbench, hosts: int, due: int, progress: Callable[[str], None]) -> HostsRun:
    """`due` accounts past due for 8 days (the 7-day reminder due) reviewed by `hosts` local host processes."""
    now = datetime.now(UTC)
    deps = bench.deps(clock=fixed_clock(now))
    progress(f"{hosts} host(s): seeding {due:,} past-due accounts")
    account_ids = [new_account_id("acc-host") for _ in range(due)]
    due_at = seed_due_accounts(
        deps.tables, deps.accounts, account_ids, failed_at=now - timedelta(days=8), policy=deps.policies.default
    )
    assert due_at <= now
    outbox = bench.directory / "hosts-outbox"
    progress(f"{hosts} host(s): starting the local hosts")
    started_hosts: list[LocalHost] = []
    try:
        for index in range(hosts):
            started_hosts.append(start_local_host(bench.connection_string, bench.directory / f"host-{index}", outbox))
        azurite_pid = bench.azurite.process.pid if bench.azurite.process else None
        host_pids = [host.process.pid for host in started_hosts]
        progress(f"{hosts} host(s): reviewing {due:,} accounts")
        azurite_cpu, hosts_cpu = cpu_seconds(azurite_pid), sum(cpu_seconds(pid) for pid in host_pids)
        started = time.perf_counter()
        pass_at = datetime.now(UTC)
        deps.start_retention_pass(pass_at)
        reviewed = wait_for_reviews(started_hosts, due)
        seconds = time.perf_counter() - started
        azurite_cpu = cpu_seconds(azurite_pid) - azurite_cpu
        hosts_cpu = sum(cpu_seconds(pid) for pid in host_pids) - hosts_cpu
        invocations = [len(WORKER_DONE.findall(host.log_text())) for host in started_hosts]
        load = load_average()
    finally:
        for host in started_hosts:
            host.stop()
    seeded = set(account_ids)
    still_due = sum(1 for entry in deps.due.due(pass_at) if entry.account_id in seeded)
    emails = bench.eml_count(outbox)
    if still_due or emails != due or reviewed != due:
        bench.notes.append(
            f"{hosts} host(s): {reviewed:,} reviewed, {still_due:,} still due, {emails:,} reminders of {due:,}"
        )
    return HostsRun(
        hosts=hosts,
        due=due,
        seconds=round(seconds, 2),
        per_second=round(due / seconds, 1),
        azurite_cpu_share=round(azurite_cpu / seconds, 2),
        hosts_cpu_share=round(hosts_cpu / seconds, 2),
        reviewed=reviewed,
        reminders=emails,
        still_due=still_due,
        worker_invocations=invocations,
        hosts_cpu_ms_per_account=round(hosts_cpu * 1000 / due, 1),
        azurite_cpu_ms_per_account=round(azurite_cpu * 1000 / due, 1),
        load_average_after=load[0] if load else None,
    )


def wait_for_reviews(hosts: list[LocalHost], due: int, timeout: float = HOSTS_TIMEOUT) -> int:
    """Poll the hosts' logs (not the storage, which would load the emulator being measured) until D reviews."""
    deadline = time.monotonic() + timeout
    while True:
        reviewed = sum(int(match["count"]) for host in hosts for match in REVIEWED.finditer(host.log_text()))
        if reviewed >= due:
            return reviewed
        for host in hosts:
            host.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{reviewed:,} of {due:,} accounts reviewed after {timeout:.0f} s")
        time.sleep(0.1)


def run_work_queue(connection_string: str, deps: Dependencies) -> list[str]:
    """Run every retention work message, as a host's worker would, until the queue is empty; returns their kinds."""
    queue = work_queue(connection_string)
    kinds: list[str] = []
    while messages := list(queue.receive_messages(messages_per_page=32, max_messages=32, visibility_timeout=60)):
        for message in messages:
            body = bytes(message.content)
            kinds.append(decode_work(body).kind)
            handle_work(deps, body, message_id=message.id, dequeue_count=message.dequeue_count)
            queue.delete_message(message)
    return kinds


def work_queue(connection_string: str) -> QueueClient:
    queue = QueueClient.from_connection_string(
        connection_string,
        RETENTION_WORK_QUEUE,
        message_encode_policy=BinaryBase64EncodePolicy(),
        message_decode_policy=BinaryBase64DecodePolicy(),
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def clear_queue(connection_string: str) -> None:
    work_queue(connection_string).clear_messages()


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process, from /proc (0 where that is not available)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scale_out_notes(figures: ScaleOut) -> list[str]:
    notes: list[str] = []
    costs = {row.requests for row in figures.scheduler}
    if figures.scheduler:
        flat = "flat in D" if len(costs) == 1 else "NOT flat in D"
        notes.append(f"scheduler invocation: {', '.join(str(c) for c in sorted(costs))} requests, {flat}")
    quiet = {row.requests for row in figures.quiet}
    if figures.quiet:
        equal = "equal" if len(quiet) == 1 else "NOT equal"
        notes.append(f"nothing-due firing before and after the events: {equal} requests")
    for row in figures.hosts:
        if row.hosts == 1 and row.hosts_cpu_share >= 0.85:
            notes.append(
                f"one host used {row.hosts_cpu_share:.0%} of a core: a single host process is bound by its own CPU"
            )
    cpu_per_account = [row.hosts_cpu_ms_per_account + row.azurite_cpu_ms_per_account for row in figures.hosts]
    if cpu_per_account and min(cpu_per_account) > 0:
        cores = os.cpu_count() or 1
        notes.append(
            f"one review cost {min(cpu_per_account):.0f}-{max(cpu_per_account):.0f} ms of CPU (hosts + Azurite): "
            f"{cores} cores allow at most {cores * 1000 / min(cpu_per_account):.0f} accounts/s on this machine "
            "whatever the host count, less what other work on it takes (see the load column)"
        )
    busiest = max(figures.hosts, key=lambda row: row.azurite_cpu_share, default=None)
    if busiest is not None:
        ceiling = (
            "near one full core: the single-threaded emulator is the ceiling here, not the hosts"
            if busiest.azurite_cpu_share >= 0.85
            else "below one core: the emulator was not saturated"
        )
        notes.append(
            f"Azurite's CPU share peaked at {busiest.azurite_cpu_share:.0%} of one core ({busiest.hosts} host(s)), "
            f"{ceiling}; the machine has {os.cpu_count()} cores shared by Azurite and every host process"
        )
    return notes

"""Figures as a printed table and as JSON under bench/results/ (timestamped, and latest.json)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class RoundTrips:
    operation: str
    size: dict[str, int]
    requests: int
    breakdown: dict[str, int]
    model: str
    expected: int
    seconds: float

    @property
    def matches(self) -> bool:
        return self.requests == self.expected

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "matches_model": self.matches}


@dataclass
class Throughput:
    operation: str
    count: int
    concurrency: int
    per_second: float
    floor_per_second: float
    floor: str
    goal_ratio: float = 1.5

    @property
    def ratio(self) -> float:
        return self.floor_per_second / self.per_second if self.per_second else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio_to_floor": round(self.ratio, 2), "within_goal": self.ratio <= self.goal_ratio}


@dataclass
class Latency:
    operation: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    floor_p50_ms: float
    floor: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Scale:
    due: int
    accounts: int
    seconds: float
    requests: int
    peak_rss_mib: float
    run_rss_growth_mib: float
    reviewed: int
    emails_sent: int
    seed_seconds: float
    python_cpu_seconds: float
    azurite_cpu_seconds: float
    probe_query_ms: float = 0.0
    probe_transaction_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DunningCohort:
    """One cohort of the dunning simulation, counted from storage (bench/dunning.py)."""

    cohort: str
    accounts: int
    retried: int = 0  # accounts with at least one automatic retry
    retry_attempts: int = 0
    recovered_by_retry: int = 0
    settled_otherwise: int = 0
    cancelled: int = 0
    enabled_at_end: int = 0
    ledger_charges: int = 0  # gateway charges after the billing engine's failed one
    ledger_successes: int = 0
    hard_declined: int = 0
    charged_after_hard_decline: int = 0
    charged_twice: int = 0
    charged_after_paid: int = 0


@dataclass
class Dunning:
    accounts: int
    step_hours: float
    days: int
    passes: int
    seconds: float
    cohorts: list[DunningCohort]
    recovered_by_retry: int
    retried: int
    retry_charges: int
    recovery_attempt_numbers: list[int]
    days_to_recovery: dict[str, float] | None
    cancelled: int
    hard_declined_charged: int
    charged_twice: int
    charged_after_paid: int
    worker_failures: int = 0
    portfolio: list[str] = field(default_factory=list)

    @property
    def sound(self) -> bool:
        """No hard-declined card charged again, no account charged twice, nothing charged once paid."""
        return self.hard_declined_charged == 0 and self.charged_twice == 0 and self.charged_after_paid == 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "sound": self.sound}


@dataclass
class SchedulerRun:
    due: int
    requests: int
    breakdown: dict[str, int]
    milliseconds: float
    items_sent: int


@dataclass
class HostsRun:
    hosts: int
    due: int
    seconds: float
    per_second: float
    azurite_cpu_share: float  # CPU seconds per wall second: 1.0 is one core, all the single-threaded emulator has
    hosts_cpu_share: float  # the same, summed over the host processes
    reviewed: int
    reminders: int
    still_due: int
    worker_invocations: list[int]  # retention_worker invocations that succeeded, per host
    hosts_cpu_ms_per_account: float
    azurite_cpu_ms_per_account: float
    load_average_after: float | None  # the machine's 1-minute load: other work shares its cores
    speedup: float = 0.0


@dataclass
class QuietFiring:
    events_before: int
    requests: int
    breakdown: dict[str, int]
    milliseconds: float
    items_run: int


@dataclass
class ScaleOut:
    scheduler: list[SchedulerRun] = field(default_factory=list)
    hosts: list[HostsRun] = field(default_factory=list)
    quiet: list[QuietFiring] = field(default_factory=list)
    per_worker_rate: float | None = None  # accounts/s of one host: the sizing model's per-worker rate

    def to_json(self) -> dict[str, Any]:
        return {
            "scheduler": [asdict(row) for row in self.scheduler],
            "hosts": [asdict(row) for row in self.hosts],
            "quiet_firing": [asdict(row) for row in self.quiet],
            "per_worker_rate_accounts_per_second": self.per_worker_rate,
        }


@dataclass
class Results:
    mode: str
    started_at: datetime
    git: dict[str, Any]
    machine: dict[str, Any]
    round_trips: list[RoundTrips] = field(default_factory=list)
    throughput: list[Throughput] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)
    scale: list[Scale] = field(default_factory=list)
    dunning: list[Dunning] = field(default_factory=list)
    scale_out: ScaleOut | None = None
    seeding: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self, finished_at: datetime) -> dict[str, Any]:
        return {
            "schema": 1,
            "mode": self.mode,
            "started_at": self.started_at.isoformat(),
            "finished_at": finished_at.isoformat(),
            "git": self.git,
            "machine": self.machine,
            "round_trips": [row.to_json() for row in self.round_trips],
            "throughput": [row.to_json() for row in self.throughput],
            "latency": [row.to_json() for row in self.latency],
            "scale": [row.to_json() for row in self.scale],
            "dunning": [row.to_json() for row in self.dunning],
            "scale_out": self.scale_out.to_json() if self.scale_out else None,
            "seeding": self.seeding,
            "notes": self.notes,
        }


def write(results: Results, directory: Path = RESULTS) -> Path:
    """Write `<UTC timestamp>.json` and `latest.json`; returns the timestamped file."""
    finished = datetime.now(UTC)
    document = json.dumps(results.to_json(finished), indent=2, sort_keys=False) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{results.started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(document, encoding="utf-8")
    (directory / "latest.json").write_text(document, encoding="utf-8")
    return path


def table(results: Results) -> str:
    """The printed report: a header line, then one section per kind of figure."""
    commit = results.git.get("commit") or "unknown"
    dirty = " (uncommitted changes)" if results.git.get("dirty") else ""
    machine = results.machine
    lines = [
        f"pastdue benchmark, mode {results.mode}, commit {commit[:12]}{dirty}, "
        f"{machine.get('cpus')} CPUs ({machine.get('cpu_model')}), Python {machine.get('python')}, "
        f"Azurite {machine.get('azurite')}, load average at start {machine.get('load_average_at_start')}"
        f" and end {machine.get('load_average_at_end')}"
    ]
    for section in (_round_trips, _throughput, _latency, _scale, _scale_out, _dunning, _seeding, _notes):
        lines += section(results)
    return "\n".join(lines)


def _round_trips(results: Results) -> list[str]:
    if not results.round_trips:
        return []
    lines = ["", "Storage round trips per operation (exact: every request the SDK sent, retries included)"]
    lines.append(f"  {'operation':<16}{'size':<18}{'requests':>9}{'model':>7}  {'ok':<4}breakdown")
    models: dict[str, str] = {}
    for row in results.round_trips:
        size = ", ".join(f"{k}={v:,}" for k, v in row.size.items())
        breakdown = " ".join(f"{k}:{v}" for k, v in row.breakdown.items())
        ok = "yes" if row.matches else "NO"
        lines.append(f"  {row.operation:<16}{size:<18}{row.requests:>9}{row.expected:>7}  {ok:<4}{breakdown}")
        models.setdefault(row.operation, row.model)
    lines.append("  models:")
    lines += [f"    {operation}: {model}" for operation, model in models.items()]
    return lines


def _throughput(results: Results) -> list[str]:
    if not results.throughput:
        return []
    lines = ["", "Throughput through the local host, against a floor of bare SDK calls measured in the same run"]
    lines.append(f"  {'operation':<22}{'n':>6}{'conc.':>6}{'per s':>9}{'floor/s':>9}{'ratio':>7}  goal   floor")
    for row in results.throughput:
        goal = "met" if row.ratio <= row.goal_ratio else "MISSED"
        lines.append(
            f"  {row.operation:<22}{row.count:>6}{row.concurrency:>6}{row.per_second:>9.1f}"
            f"{row.floor_per_second:>9.1f}{row.ratio:>6.2f}x  {goal:<7}{row.floor}"
        )
    return lines


def _latency(results: Results) -> list[str]:
    if not results.latency:
        return []
    lines = ["", "Latency through the local host (one client, one request at a time)"]
    lines.append(f"  {'operation':<22}{'n':>6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}{'floor p50':>11}")
    for row in results.latency:
        lines.append(
            f"  {row.operation:<22}{row.count:>6}{row.p50_ms:>9.1f}{row.p95_ms:>9.1f}{row.p99_ms:>9.1f}"
            f"{row.max_ms:>9.1f}{row.floor_p50_ms:>11.1f}"
        )
    return lines


def _scale(results: Results) -> list[str]:
    if not results.scale:
        return []
    lines = ["", "Scale: one retention run over D due accounts among T accounts (a fresh process per run)"]
    lines.append(
        f"  {'D due':>7}{'T accounts':>12}{'seconds':>9}{'requests':>10}{'req/due':>8}"
        f"{'peak RSS':>10}{'growth':>8}{'py CPU s':>10}{'Azurite CPU s':>15}{'bare query ms':>15}{'bare txn ms':>13}"
    )
    for row in results.scale:
        lines.append(
            f"  {row.due:>7,}{row.accounts:>12,}{row.seconds:>9.1f}{row.requests:>10,}"
            f"{row.requests / max(row.due, 1):>8.2f}{row.peak_rss_mib:>7.1f}MiB{row.run_rss_growth_mib:>5.1f}MiB"
            f"{row.python_cpu_seconds:>10.1f}{row.azurite_cpu_seconds:>15.1f}"
            f"{row.probe_query_ms:>15.1f}{row.probe_transaction_ms:>13.1f}"
        )
    return lines


def _scale_out(results: Results) -> list[str]:
    figures = results.scale_out
    if figures is None:
        return []
    lines: list[str] = []
    if figures.scheduler:
        lines += ["", "Scale-out: the scheduler's own invocation (start_retention_pass) at D due entries"]
        lines.append(f"  {'D due':>7}{'requests':>10}{'ms':>9}{'items sent':>12}  breakdown")
        for row in figures.scheduler:
            breakdown = " ".join(f"{k}:{v}" for k, v in row.breakdown.items())
            lines.append(f"  {row.due:>7,}{row.requests:>10}{row.milliseconds:>9.1f}{row.items_sent:>12}  {breakdown}")
    if figures.hosts:
        lines += ["", "Scale-out: D past-due accounts reviewed end to end by N local hosts on one Azurite"]
        lines.append(
            f"  {'hosts':>5}{'D due':>7}{'seconds':>9}{'accts/s':>9}{'speedup':>9}{'Azurite CPU':>13}"
            f"{'hosts CPU':>11}{'CPU ms/acct':>13}{'reviewed':>10}{'reminders':>11}{'still due':>11}{'load':>6}"
            "  worker invocations per host"
        )
        for hosts in figures.hosts:
            lines.append(
                f"  {hosts.hosts:>5}{hosts.due:>7,}{hosts.seconds:>9.1f}{hosts.per_second:>9.1f}"
                f"{hosts.speedup:>8.2f}x{hosts.azurite_cpu_share:>12.0%}{hosts.hosts_cpu_share:>11.0%}"
                f"{hosts.hosts_cpu_ms_per_account:>6.0f}+{hosts.azurite_cpu_ms_per_account:<6.0f}"
                f"{hosts.reviewed:>10,}{hosts.reminders:>11,}{hosts.still_due:>11,}"
                f"{hosts.load_average_after or 0:>6.1f}  {hosts.worker_invocations}"
            )
        if figures.per_worker_rate is not None:
            lines.append(f"  per-worker rate (one host): {figures.per_worker_rate:.1f} accounts/s")
        lines.append("  CPU ms/acct: the hosts' + Azurite's CPU time per account reviewed; load: 1-minute load after")
    if figures.quiet:
        lines += ["", "Scale-out: a whole firing with nothing due (start pass, every sweep, housekeeping)"]
        lines.append(f"  {'after events':>13}{'requests':>10}{'ms':>9}{'items run':>11}  breakdown")
        for quiet in figures.quiet:
            breakdown = " ".join(f"{k}:{v}" for k, v in quiet.breakdown.items())
            lines.append(
                f"  {quiet.events_before:>13,}{quiet.requests:>10}{quiet.milliseconds:>9.1f}{quiet.items_run:>11}"
                f"  {breakdown}"
            )
    return lines


def _dunning(results: Results) -> list[str]:
    lines: list[str] = []
    for run in results.dunning:
        lines += [
            "",
            f"Dunning: {run.accounts} accounts walked {run.days} days on the test clock, a full pass every "
            f"{run.step_hours:g} h ({run.passes} passes through the timer's use case and the work-queue worker, "
            f"{run.seconds:.0f} s); every number counted from the partitions and the gateway's ledger",
            "  portfolio:",
            *(f"    {line}" for line in run.portfolio),
            f"  {'cohort':<14}{'n':>4}{'retried':>9}{'retries':>9}{'by retry':>10}{'share':>7}{'portal':>8}"
            f"{'cancelled':>11}"
            f"{'enabled':>9}{'charges':>9}{'paid':>6}{'hard-charged':>14}",
        ]
        for row in run.cohorts:
            share = f"{row.recovered_by_retry / row.accounts:.0%}" if row.accounts else "-"
            lines.append(
                f"  {row.cohort:<14}{row.accounts:>4}{row.retried:>9}{row.retry_attempts:>9}"
                f"{row.recovered_by_retry:>10}{share:>7}"
                f"{row.settled_otherwise:>8}{row.cancelled:>11}{row.enabled_at_end:>9}{row.ledger_charges:>9}"
                f"{row.ledger_successes:>6}{row.charged_after_hard_decline:>14}"
            )
        numbers = run.recovery_attempt_numbers
        recovered = run.recovered_by_retry
        spread = run.days_to_recovery
        lines += [
            f"  recovered by retries: {recovered} of {run.accounts} accounts ({recovered / run.accounts:.0%}); "
            f"of the {run.retried} retried at least once (a soft decline with a token): "
            f"{recovered / run.retried if run.retried else 0:.0%}",
            f"  attempts per recovery: the recovering attempt's number, mean "
            f"{sum(numbers) / len(numbers) if numbers else 0:.2f} ({_histogram(numbers)}); every retry charge made / "
            f"recoveries: {run.retry_charges} / {recovered} = {run.retry_charges / recovered if recovered else 0:.2f}",
            "  days from the failure to the recovery: "
            + (f"min {spread['min']}, median {spread['median']}, max {spread['max']}" if spread else "no recovery"),
            f"  cancellations (subscription Disabled): {run.cancelled}",
            f"  charges of a card after its hard decline was known (must be 0): {run.hard_declined_charged}",
            f"  accounts charged successfully twice (must be 0): {run.charged_twice}; charges after the balance was "
            f"paid (must be 0): {run.charged_after_paid}; worker failures: {run.worker_failures}",
            f"  verdict: {'sound' if run.sound else 'NOT SOUND'}",
        ]
    return lines


def _histogram(numbers: list[int]) -> str:
    counts: dict[int, int] = {}
    for number in numbers:
        counts[number] = counts.get(number, 0) + 1
    return ", ".join(f"attempt {n}: {counts[n]}" for n in sorted(counts)) or "none"


def _seeding(results: Results) -> list[str]:
    if not results.seeding:
        return []
    lines = ["", "Seeding (test data written before the runs; not a measured figure)"]
    lines += [f"  {name}: {value}" for name, value in results.seeding.items()]
    return lines


def _notes(results: Results) -> list[str]:
    return ["", "Notes", *(f"  - {note}" for note in results.notes)] if results.notes else []

"""Retention figures: round trips of a run with D=100 due among T accounts, and the scale runs (time, memory).

All retention figures share one Azurite whose account count only grows, so each level T is seeded once. Two
cohorts are seeded per level, due at two different nightly runs: the round-trip cohort (failed on day 0, due for
its 7-day reminder at the run of day 8) and the scale cohort (failed on day 1, due at the run of day 9). After a
run its accounts' next review (the 14-day reminder) lies after every later run, so no run sees another's work.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.core import MatchConditions
from azure.data.tables import UpdateMode

from bench.counting import RequestTally
from bench.environment import Workbench, fixed_clock
from bench.report import RoundTrips, Scale
from bench.seeding import new_account_id, seed_due_accounts, seed_plain_accounts
from devhost.azurite import REPO_ROOT
from shared.bootstrap import Dependencies
from shared.settings import retention_policy
from shared.storage.layout import ACCOUNTS_TABLE
from shared.storage.tables import TableStorage

FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
ROUND_TRIP_RUN_AT = datetime(2027, 1, 12, 2, 0, tzinfo=UTC)
SCALE_FAILED_AT = FAILED_AT + timedelta(days=1)
SCALE_RUN_AT = ROUND_TRIP_RUN_AT + timedelta(days=1)
DUE_SHARDS = 8
SHARD_COUNT = 1  # the run reads the recorded shard count first (the first run on a fresh store also writes it)
LEDGER_PURGE = 1  # the run also forgets webhook ids past the replay window: one query of the small ledger
# read, next-review upsert, commit, the sent-email index insert (each seeded account sends its reminder), delivery
# record, due-entry delete
PER_DUE_ACCOUNT = 6


@dataclass(frozen=True)
class RetentionPlan:
    round_trip_due: int
    round_trip_levels: tuple[int, ...]
    scale_due: int
    scale_levels: tuple[int, ...]


def retention_model(due: int) -> tuple[str, int]:
    # One query per shard, a page per 1,000 due entries in it (exact while no shard holds more than 1,000).
    shard_pages = DUE_SHARDS * max(1, -(-due // (DUE_SHARDS * 1000)))
    expected = SHARD_COUNT + shard_pages + LEDGER_PURGE + PER_DUE_ACCOUNT * due
    return f"{SHARD_COUNT} + {DUE_SHARDS} shard queries + {LEDGER_PURGE} + {PER_DUE_ACCOUNT}·D, flat in T", expected


def retention_figures(
    bench: Workbench, plan: RetentionPlan, progress: Callable[[str], None], seeding: dict[str, str]
) -> tuple[list[RoundTrips], list[Scale]]:
    tally = RequestTally()
    deps = bench.deps(clock=fixed_clock(ROUND_TRIP_RUN_AT), tally=tally)
    policy = retention_policy(deps.settings)
    deps.due.shards_to_sweep()  # writes the shard-count row once per store: not part of any run below
    round_trips: list[RoundTrips] = []
    scale: list[Scale] = []
    for level in sorted(set(plan.round_trip_levels) | set(plan.scale_levels)):
        with_round_trip = level in plan.round_trip_levels
        with_scale = level in plan.scale_levels
        cohorts = (plan.round_trip_due if with_round_trip else 0) + (plan.scale_due if with_scale else 0)
        background = max(0, level - cohorts - bench.accounts)
        progress(f"seeding {background:,} plain accounts and {cohorts:,} due accounts (T={level:,})")
        started = time.perf_counter()
        seed_plain_accounts(deps.tables, "acc-plain", bench.accounts, background)
        seeding[f"{background:,} plain accounts (to T={level:,})"] = rate(background, time.perf_counter() - started)
        bench.accounts += background
        round_trip_ids = [new_account_id("acc-rt") for _ in range(plan.round_trip_due if with_round_trip else 0)]
        scale_ids = [new_account_id("acc-sc") for _ in range(plan.scale_due if with_scale else 0)]
        started = time.perf_counter()
        if round_trip_ids:
            due_at = seed_due_accounts(deps.tables, deps.accounts, round_trip_ids, failed_at=FAILED_AT, policy=policy)
            assert due_at <= ROUND_TRIP_RUN_AT
        if scale_ids:
            due_at = seed_due_accounts(deps.tables, deps.accounts, scale_ids, failed_at=SCALE_FAILED_AT, policy=policy)
            assert ROUND_TRIP_RUN_AT < due_at <= SCALE_RUN_AT
        seeding[f"{cohorts:,} due accounts (at T={level:,})"] = rate(cohorts, time.perf_counter() - started)
        bench.accounts += cohorts
        if with_round_trip:
            progress(f"retention run, D={plan.round_trip_due} among T={bench.accounts:,}: round trips")
            round_trips.append(_round_trip_run(bench, deps, tally, plan.round_trip_due))
        if with_scale:
            progress(f"retention run, D={plan.scale_due:,} among T={bench.accounts:,}: time and memory")
            row = _scale_run(bench, plan.scale_due, seeding[f"{cohorts:,} due accounts (at T={level:,})"])
            row.probe_query_ms, row.probe_transaction_ms = probe_storage(deps.tables, bench.accounts - cohorts)
            scale.append(row)
    return round_trips, scale


def _round_trip_run(bench: Workbench, deps: Dependencies, tally: RequestTally, due: int) -> RoundTrips:
    """The single-process run of `python -m cli retention --at` (the timer only starts a pass now: scale_out.py)."""
    tally.take()
    started = time.perf_counter()
    deps.run_retention(now=ROUND_TRIP_RUN_AT, time_budget=timedelta(hours=4))
    seconds = time.perf_counter() - started
    requests, breakdown = tally.take()
    model, expected = retention_model(due)
    return RoundTrips("retention --at", {"D": due, "T": bench.accounts}, requests, breakdown, model, expected, seconds)


def _scale_run(bench: Workbench, due: int, seed_note: str) -> Scale:
    """One run in a fresh process, so its peak memory is its own; its emails are counted in the outbox it wrote."""
    outbox = bench.directory / "scale-outbox"
    arguments = {"connection_string": bench.connection_string, "outbox": str(outbox), "at": SCALE_RUN_AT.isoformat()}
    emails_before = bench.eml_count(outbox)
    azurite_cpu = _cpu_seconds(bench.azurite.process.pid if bench.azurite.process else None)
    completed = subprocess.run(
        [sys.executable, "-m", "bench.retention_worker", json.dumps(arguments)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the retention worker failed:\n{completed.stderr[-3000:]}")
    measured = json.loads(completed.stdout.strip().splitlines()[-1])
    emails_sent = bench.eml_count(outbox) - emails_before
    if emails_sent != measured["emails_sent"]:
        bench.notes.append(
            f"scale run at T={bench.accounts:,}: {emails_sent:,} emails in the outbox, "
            f"the run reported {measured['emails_sent']:,}"
        )
    azurite_cpu = _cpu_seconds(bench.azurite.process.pid if bench.azurite.process else None) - azurite_cpu
    if measured["failed"] or measured["budget_exhausted"]:
        bench.notes.append(
            f"scale run at T={bench.accounts:,}: {measured['failed']} accounts failed, "
            f"budget exhausted: {measured['budget_exhausted']}"
        )
    if measured["reviewed"] != due:
        bench.notes.append(f"scale run at T={bench.accounts:,} reviewed {measured['reviewed']:,} of {due:,} due")
    return Scale(
        due=due,
        accounts=bench.accounts,
        seconds=measured["seconds"],
        requests=measured["requests"],
        peak_rss_mib=measured["peak_rss_mib"],
        run_rss_growth_mib=measured["peak_rss_mib"] - measured["baseline_rss_mib"],
        reviewed=measured["reviewed"],
        emails_sent=emails_sent,
        seed_seconds=_seconds_of(seed_note),
        python_cpu_seconds=measured["cpu_seconds"],
        azurite_cpu_seconds=round(azurite_cpu, 2),
    )


def _cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process, from /proc (0 where that is not available)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def probe_storage(storage: TableStorage, plain_accounts: int, samples: int = 50) -> tuple[float, float]:
    """Mean milliseconds of a bare partition query and a bare one-row ETag-guarded transaction on plain accounts of
    the accounts table: the emulator's own cost per request at this table size, with none of our code around it."""
    table = storage.table(ACCOUNTS_TABLE)
    rng = random.Random(plain_accounts)
    picks = rng.sample(range(max(plain_accounts, samples)), samples)
    account_ids = [f"acc-plain-{index:07d}" for index in picks]
    started = time.perf_counter()
    rows = [next(iter(table.query_entities("PartitionKey eq @pk", parameters={"pk": a})), None) for a in account_ids]
    query_ms = (time.perf_counter() - started) * 1000 / samples
    found = [row for row in rows if row is not None]
    started = time.perf_counter()
    for row in found:
        guard = {
            "mode": UpdateMode.REPLACE,
            "etag": row.metadata["etag"],
            "match_condition": MatchConditions.IfNotModified,
        }
        table.submit_transaction([("update", dict(row), guard)])
    transaction_ms = (time.perf_counter() - started) * 1000 / max(len(found), 1)
    return round(query_ms, 2), round(transaction_ms, 2)


def rate(count: int, seconds: float) -> str:
    return f"{count:,} in {seconds:.1f} s ({count / seconds:,.0f}/s)" if seconds > 0 and count else f"{count:,}"


def _seconds_of(note: str) -> float:
    try:
        return float(note.split(" in ", 1)[1].split(" s", 1)[0])
    except (IndexError, ValueError):
        return 0.0


def levels(values: Sequence[int]) -> tuple[int, ...]:
    return tuple(sorted(set(values)))

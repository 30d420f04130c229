"""`python -m bench [--quick | --full] [--only FIGURE ...]`: run the benchmark, print the table, write the JSON.

`python -m bench publish-faults`: publish the fault suite's latest counts (see bench/faults.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench import faults, report
from bench.dunning import dunning_figure
from bench.environment import git_commit, load_average, machine, workbench
from bench.retention import RetentionPlan, retention_figures
from bench.round_trips import payment_failed_round_trips, settlement_round_trips
from bench.scale_out import ScaleOutPlan, scale_out_figures
from bench.throughput import event_throughput, settlement_figures

FIGURES = ("round-trips", "throughput", "latency", "scale", "scale-out", "dunning")


# The sizes: the scheduler at D=100 and 10,000, D=2,000 across 1, 2 and 4 hosts, 10,000 events.
SCALE_OUT = ScaleOutPlan(scheduler_due=(100, 10_000), hosts_due=2_000, host_counts=(1, 2, 4), quiet_events=10_000)


@dataclass(frozen=True)
class Profile:
    subscriptions: tuple[int, ...]
    retention: RetentionPlan
    events: int
    settlements: int
    latency_samples: int
    dunning_accounts: int
    dunning_step: timedelta
    scale_out: ScaleOutPlan


PROFILES = {
    "quick": Profile(
        subscriptions=(1, 10, 100, 500),
        retention=RetentionPlan(100, (1_000, 5_000), 150, (1_000, 5_000)),
        events=50,
        settlements=30,
        latency_samples=30,
        dunning_accounts=60,
        dunning_step=timedelta(days=1),
        scale_out=ScaleOutPlan(scheduler_due=(100, 10_000), hosts_due=500, host_counts=(1, 2, 4), quiet_events=1_000),
    ),
    "standard": Profile(
        subscriptions=(1, 10, 100, 500),
        retention=RetentionPlan(100, (1_000, 10_000), 1_000, (2_000, 20_000)),
        events=200,
        settlements=100,
        latency_samples=100,
        dunning_accounts=200,
        dunning_step=timedelta(hours=6),
        scale_out=SCALE_OUT,
    ),
    "full": Profile(
        subscriptions=(1, 10, 100, 500),
        retention=RetentionPlan(100, (1_000, 10_000, 100_000), 10_000, (10_000, 100_000)),
        events=500,
        settlements=200,
        latency_samples=200,
        dunning_accounts=200,
        dunning_step=timedelta(hours=6),
        scale_out=SCALE_OUT,
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes, about 8 minutes on 2 cores")
    size.add_argument("--full", action="store_true", help="the issue's full sizes (T up to 100,000; D=10,000)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="FIGURE",
        help=f"run only these figures (repeat or comma-separate): {', '.join(FIGURES)}",
    )
    parser.add_argument("--no-write", action="store_true", help="print only; do not write bench/results/")
    args = parser.parse_args(argv)
    chosen = {name.strip() for value in args.only for name in value.split(",") if name.strip()}
    unknown = chosen - set(FIGURES)
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {', '.join(FIGURES)}")
    args.figures = chosen or set(FIGURES)
    args.mode = "quick" if args.quick else "full" if args.full else "standard"
    return args


def host_figures(figures: set[str], profile: Profile, results: report.Results, progress: Callable[[str], None]) -> None:
    with workbench("host") as bench:
        if "throughput" in figures:
            results.throughput.append(event_throughput(bench, profile.events, progress))
        throughput, latency = settlement_figures(bench, profile.settlements, profile.latency_samples, progress)
        if "throughput" in figures:
            results.throughput.append(throughput)
        if "latency" in figures:
            results.latency.append(latency)
        results.notes += bench.notes


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["publish-faults"]:
        return faults.main(arguments[1:])
    args = parse_args(arguments)
    profile = PROFILES[args.mode]
    began = time.monotonic()

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - began:6.1f} s] {message}", file=sys.stderr, flush=True)

    results = report.Results(mode=args.mode, started_at=datetime.now(UTC), git=git_commit(), machine=machine())
    if "round-trips" in args.figures:
        progress("round trips: payment.failed and settlement")
        with workbench("operations") as bench:
            results.round_trips += payment_failed_round_trips(bench, profile.subscriptions)
            results.round_trips += settlement_round_trips(bench, profile.subscriptions)
    if {"round-trips", "scale"} & args.figures:
        plan = profile.retention
        plan = RetentionPlan(
            plan.round_trip_due,
            plan.round_trip_levels if "round-trips" in args.figures else (),
            plan.scale_due,
            plan.scale_levels if "scale" in args.figures else (),
        )
        with workbench("retention") as bench:
            round_trips, scale = retention_figures(bench, plan, progress, results.seeding)
            results.round_trips += round_trips
            results.scale += scale
            results.notes += bench.notes
    if {"throughput", "latency"} & args.figures:
        host_figures(args.figures, profile, results, progress)
    if "scale-out" in args.figures:
        results.scale_out = scale_out_figures(profile.scale_out, progress, results.notes)
    if "dunning" in args.figures:
        with workbench("dunning") as bench:
            results.dunning.append(dunning_figure(bench, profile.dunning_accounts, profile.dunning_step, progress))
    progress("done")
    results.machine["load_average_at_end"] = load_average()
    results.notes.append(f"wall time of this run: {time.monotonic() - began:.0f} s")
    print(report.table(results))
    if not args.no_write:
        path = report.write(results)
        print(f"\nwritten: {path.relative_to(report.RESULTS.parent.parent)} and bench/results/latest.json")
    if not all(run.sound for run in results.dunning):
        print("dunning: a hard-declined card was charged again, or an account twice (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

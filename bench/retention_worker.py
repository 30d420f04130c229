"""One retention run in its own process: `python -m bench.retention_worker '<json>'` prints its figures as JSON.

A fresh process makes the peak resident memory (VmHWM) the run's own; the baseline is taken after imports and
wiring, just before the run. With `"tracemalloc": true` it also reports the peak of Python's own heap (slower).
"""

from __future__ import annotations

import json
import resource
import sys
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

from bench.counting import RequestTally
from bench.environment import fixed_clock, production_deps


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _peak_rss_mib() -> float:
    """This process's own peak resident memory. Not `ru_maxrss`: on Linux that keeps the high-water mark of the
    memory the process had before `exec`, which for a child started by a big parent is the parent's."""
    peak = _status_mib("VmHWM")
    return peak if peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argument: str) -> int:
    options = json.loads(argument)
    at = datetime.fromisoformat(options["at"])
    tally = RequestTally()
    deps = production_deps(options["connection_string"], Path(options["outbox"]), clock=fixed_clock(at), tally=tally)
    tally.take()
    traced = bool(options.get("tracemalloc"))
    if traced:
        tracemalloc.start()
    baseline = _status_mib("VmRSS")
    cpu = time.process_time()
    started = time.perf_counter()
    report = deps.run_retention(now=at, time_budget=timedelta(hours=4))
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu
    requests, breakdown = tally.take()
    peak = _peak_rss_mib()
    heap_peak = tracemalloc.get_traced_memory()[1] / 1024 / 1024 if traced else None
    print(
        json.dumps(
            {
                "seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "requests": requests,
                "breakdown": breakdown,
                "baseline_rss_mib": round(baseline, 1),
                "peak_rss_mib": round(peak, 1),
                "python_heap_peak_mib": round(heap_peak, 1) if heap_peak is not None else None,
                "reviewed": report.accounts_reviewed,
                "failed": report.accounts_failed,
                "emails_sent": report.emails_sent,
                "budget_exhausted": report.budget_exhausted,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

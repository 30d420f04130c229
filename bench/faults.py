"""`python -m bench publish-faults`: copy the fault suite's latest counts to bench/results/faults-latest.json (tracked).

A run of `tests/faults` writes its counts to bench/results/local/ (ignored by git), never to a tracked file; this
command publishes them once every case has counts measured on one commit.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import RESULTS

LOCAL_FAULTS = RESULTS / "local" / "faults-latest.json"
PUBLISHED_FAULTS = RESULTS / "faults-latest.json"
# One section per case of tests/faults; a publication needs all of them.
FAULT_SECTIONS = (
    "hostile_http_input",
    "payment_failed_at_least_once",
    "settlement_retention_race",
    "storage_restart",
)
RUN_COMMAND = ".venv/bin/python -m pytest -p no:cacheprovider -n 0 tests/faults -q"


class PublicationError(Exception):
    pass


def read_counts(path: Path = LOCAL_FAULTS) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return document


def publication(local: dict[str, Any]) -> dict[str, Any]:
    """The document to publish: every case's counts, all measured on the same commit."""
    sections: dict[str, dict[str, Any]] = local.get("sections", {})
    missing = [name for name in FAULT_SECTIONS if name not in sections]
    if missing:
        raise PublicationError(f"no counts yet for {', '.join(missing)}; run `{RUN_COMMAND}` first")
    commits = {name: counts.get("commit") for name, counts in sections.items()}
    if len(set(commits.values())) != 1:
        measured = ", ".join(f"{name} on {str(commit)[:12]}" for name, commit in sorted(commits.items()))
        raise PublicationError(f"the counts come from different commits ({measured}); run `{RUN_COMMAND}` again")
    [commit] = set(commits.values())
    return {
        "commit": commit,
        "dirty": any(bool(counts.get("dirty")) for counts in sections.values()),
        "published_at": datetime.now(UTC).isoformat(),
        "sections": dict(sorted(sections.items())),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench publish-faults", description=__doc__)
    parser.parse_args(argv)
    try:
        document = publication(read_counts())
    except PublicationError as error:
        print(f"not published: {error}", file=sys.stderr)
        return 1
    PUBLISHED_FAULTS.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    where = PUBLISHED_FAULTS.relative_to(RESULTS.parent.parent)
    print(f"published the counts of {len(document['sections'])} cases, measured on {document['commit']}, to {where}")
    if document["dirty"]:
        print('note: they were measured with uncommitted changes (recorded as "dirty": true)', file=sys.stderr)
    return 0

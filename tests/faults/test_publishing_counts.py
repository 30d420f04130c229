"""`python -m bench publish-faults` publishes the counts only when every fault case has them, from one commit."""

from __future__ import annotations

from typing import Any

import pytest

from bench.faults import FAULT_SECTIONS, PublicationError, publication


def local_counts(commits: dict[str, str], dirty: bool = False) -> dict[str, Any]:
    return {"sections": {name: {"commit": commit, "dirty": dirty, "lost": 0} for name, commit in commits.items()}}


def test_counts_of_every_case_from_one_commit_are_published_with_that_commit() -> None:
    document = publication(local_counts(dict.fromkeys(FAULT_SECTIONS, "abc123")))

    assert document["commit"] == "abc123"
    assert document["dirty"] is False
    assert sorted(document["sections"]) == sorted(FAULT_SECTIONS)


def test_counts_measured_with_uncommitted_changes_are_published_as_dirty() -> None:
    assert publication(local_counts(dict.fromkeys(FAULT_SECTIONS, "abc123"), dirty=True))["dirty"] is True


def test_a_case_without_counts_stops_the_publication() -> None:
    with pytest.raises(PublicationError, match=FAULT_SECTIONS[0]):
        publication(local_counts(dict.fromkeys(FAULT_SECTIONS[1:], "abc123")))


def test_counts_from_different_commits_stop_the_publication() -> None:
    commits = {**dict.fromkeys(FAULT_SECTIONS, "abc123"), FAULT_SECTIONS[-1]: "def456"}

    with pytest.raises(PublicationError, match="different commits"):
        publication(local_counts(commits))

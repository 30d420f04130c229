"""Table `due` when RETENTION_SHARDS changes between deployments: nothing written under another count is stranded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from devhost.azurite import AzuriteProcess
from shared.storage.due_index import TableDueIndex
from shared.storage.layout import due_shard_index
from tests.contract.conftest import IsolatedTables

pytestmark = pytest.mark.azurite
NOW = datetime(2026, 12, 24, 2, 0, tzinfo=UTC)


@pytest.fixture
def tables(azurite: AzuriteProcess) -> Iterator[IsolatedTables]:
    isolated = IsolatedTables(azurite.connection_string)
    try:
        yield isolated
    finally:
        isolated.drop()


def test_a_smaller_count_still_sweeps_and_removes_what_a_larger_one_wrote(tables: IsolatedTables) -> None:
    wide = TableDueIndex(tables, shards=16)
    assert wide.shards_to_sweep() == 16  # the firing records the count
    written = [wide.schedule(f"acc-{n}", NOW - timedelta(minutes=n)) for n in range(40)]
    assert max(entry.shard or 0 for entry in written) >= 8  # some live in shards a count of 4 does not have

    narrow = TableDueIndex(tables, shards=4)

    assert narrow.shards_to_sweep() == 16
    found = list(narrow.due(NOW))
    assert sorted(e.account_id for e in found) == sorted(e.account_id for e in written)
    for entry in found:
        narrow.remove(entry)
    assert list(narrow.due(NOW)) == []
    assert narrow.schedule("acc-new", NOW).shard == due_shard_index("acc-new", 4)


def test_a_larger_count_is_recorded_by_the_first_firing_and_never_lowered(tables: IsolatedTables) -> None:
    assert TableDueIndex(tables, shards=8).shards_to_sweep() == 8
    assert TableDueIndex(tables, shards=32).shards_to_sweep() == 32
    assert TableDueIndex(tables, shards=8).shards_to_sweep() == 32


def test_the_default_placement_is_the_one_the_index_always_had() -> None:
    """Eight shards by the first byte of the SHA-256 of the account id, as before the count was a setting."""
    import hashlib

    for n in range(100):
        account_id = f"acc-{n}"
        assert due_shard_index(account_id, 8) == hashlib.sha256(account_id.encode()).digest()[0] % 8

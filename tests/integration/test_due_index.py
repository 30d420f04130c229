from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.storage.due_index import TableDueIndex
from shared.storage.layout import DUE_SHARDS, due_row_key, due_shard_of
from shared.storage.tables import RequestCounter

NOW = datetime(2026, 12, 24, 2, 0, tzinfo=UTC)


def test_only_entries_at_or_before_the_moment_are_due(due_index: TableDueIndex, account_id: str) -> None:
    due_index.schedule(f"{account_id}-past", NOW - timedelta(days=3))
    due_index.schedule(f"{account_id}-now", NOW)
    due_index.schedule(f"{account_id}-future", NOW + timedelta(seconds=1))

    due = {entry.account_id for entry in due_index.due(NOW) if entry.account_id.startswith(account_id)}

    assert due == {f"{account_id}-past", f"{account_id}-now"}


def test_scheduling_twice_is_one_entry_and_removing_twice_is_harmless(
    due_index: TableDueIndex, account_id: str
) -> None:
    due_index.schedule(account_id, NOW - timedelta(hours=1))
    entry = due_index.schedule(account_id, NOW - timedelta(hours=1))

    assert [e for e in due_index.due(NOW) if e.account_id == account_id] == [entry]
    due_index.remove(entry)
    due_index.remove(entry)
    assert [e for e in due_index.due(NOW) if e.account_id == account_id] == []


def test_reading_what_is_due_costs_one_query_per_shard_whatever_is_scheduled_later(
    due_index: TableDueIndex, account_id: str, request_counter: RequestCounter
) -> None:
    for n in range(40):
        due_index.schedule(f"{account_id}-{n}", NOW + timedelta(days=n + 1))
    request_counter.reset()

    list(due_index.due(NOW - timedelta(days=365)))

    assert request_counter.reset() == DUE_SHARDS


def test_accounts_spread_over_the_shards() -> None:
    shards = {due_shard_of(f"acc-{n}") for n in range(200)}
    assert len(shards) == DUE_SHARDS
    assert due_row_key("acc-1", NOW) == "20261224T020000Z|acc-1"

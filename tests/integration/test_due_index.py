from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.services.ports import DueEntry
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
    due_index.shards_to_sweep()  # the shard-count row exists from the first firing on
    request_counter.reset()

    list(due_index.due(NOW - timedelta(days=365)))

    # One query per shard, and one read of how many shards there are (the count may have been larger before).
    assert request_counter.reset() == DUE_SHARDS + 1


def test_accounts_spread_over_the_shards() -> None:
    shards = {due_shard_of(f"acc-{n}") for n in range(200)}
    assert len(shards) == DUE_SHARDS
    assert due_row_key("acc-1", NOW) == "20261224T020000Z|acc-1"


def test_an_accounts_entries_scheduled_together_cost_one_transaction(
    due_index: TableDueIndex, account_id: str, request_counter: RequestCounter
) -> None:
    moments = [NOW - timedelta(minutes=5), NOW - timedelta(days=1) + timedelta(microseconds=1)]

    entries = due_index.schedule_many(DueEntry(account_id, at) for at in moments)

    assert request_counter.reset() == 1
    rounded = [moments[0], NOW - timedelta(days=1) + timedelta(seconds=1)]
    assert entries == [DueEntry(account_id, at) for at in rounded]
    assert sorted(e.due_at for e in due_index.due(NOW) if e.account_id == account_id) == sorted(rounded)


def test_scheduling_many_again_or_the_same_moment_twice_changes_nothing(
    due_index: TableDueIndex, account_id: str
) -> None:
    entry = DueEntry(account_id, NOW - timedelta(hours=1))
    due_index.schedule(entry.account_id, entry.due_at)

    same_second = DueEntry(account_id, entry.due_at - timedelta(microseconds=500))  # rounds up to the same entry
    again = due_index.schedule_many([entry, same_second, entry])

    assert again == [entry]
    assert [e for e in due_index.due(NOW) if e.account_id == account_id] == [entry]


def test_entries_of_accounts_in_other_shards_cost_one_transaction_per_shard(
    due_index: TableDueIndex, account_id: str, request_counter: RequestCounter
) -> None:
    accounts = [f"{account_id}-{n}" for n in range(30)]
    shards = {due_shard_of(account) for account in accounts}

    due_index.schedule_many(DueEntry(account, NOW - timedelta(minutes=1)) for account in accounts)

    assert request_counter.reset() == len(shards)
    assert {e.account_id for e in due_index.due(NOW) if e.account_id.startswith(f"{account_id}-")} == set(accounts)

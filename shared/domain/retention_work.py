"""The retention pass as queue work: the timer hands out one sweep per due-index shard, each sweep hands out batches.

Two levels, so the timer's own invocation costs the same whatever is due (one message per shard) and the reviews
spread over as many instances as the host scales the work queue to:
- `ShardSweep` (one per shard and firing): read that shard's entries due at `at`, send them on as `AccountReview`s.
- `AccountReview` (a batch of due entries, one shard): review each account once, then drop the entries it consumed.
- `Housekeeping` (one per firing): what a pass does besides accounts (expired webhook ids).
Every item is safe to run twice: a review decides on the account's stored state and commits under its ETag, so a
duplicate finds nothing left to do.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError

from shared.domain.model import Frozen, Identifier

RETENTION_WORK_QUEUE = "retention-work"
# The due index's shards (RETENTION_SHARDS): a sweep each per firing. Sizing: docs/retention.md.
DEFAULT_SHARDS = 8
MAX_SHARDS = 256
# One batch reviews this many accounts by default: small enough that one slow account delays few others and a
# redelivered batch repeats little, large enough that the queue's own requests stay a few percent of the reviews'.
DEFAULT_BATCH_SIZE = 20
MAX_BATCH_SIZE = 100


class InvalidWorkItemError(Exception):
    """A work message that is not one of ours (or not any more): set aside with this reason."""


class DueWork(Frozen):
    """One due-index entry as the work queue carries it: the account, its moment and the shard it is kept in."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    account_id: Identifier = Field(alias="accountId")
    due_at: AwareDatetime = Field(alias="dueAt")
    shard: int = Field(ge=0)


class ShardSweep(Frozen):
    kind: Literal["sweep"] = "sweep"
    shard: int = Field(ge=0)
    at: AwareDatetime


class AccountReview(Frozen):
    kind: Literal["review"] = "review"
    at: AwareDatetime
    entries: tuple[DueWork, ...] = Field(min_length=1, max_length=MAX_BATCH_SIZE)

    @property
    def account_ids(self) -> list[str]:
        """Each account once, in the order its first entry came (oldest due first)."""
        return list(dict.fromkeys(entry.account_id for entry in self.entries))

    def entries_of(self, account_id: str) -> list[DueWork]:
        return [entry for entry in self.entries if entry.account_id == account_id]


class Housekeeping(Frozen):
    kind: Literal["housekeeping"] = "housekeeping"
    at: AwareDatetime


WorkItem = Annotated[ShardSweep | AccountReview | Housekeeping, Field(discriminator="kind")]
_WORK_ITEM: TypeAdapter[ShardSweep | AccountReview | Housekeeping] = TypeAdapter(WorkItem)


def encode_work(item: ShardSweep | AccountReview | Housekeeping) -> bytes:
    return item.model_dump_json(by_alias=True).encode()


def decode_work(body: bytes) -> ShardSweep | AccountReview | Housekeeping:
    try:
        return _WORK_ITEM.validate_json(body)
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidWorkItemError(_first_problem(error)) from None


def _first_problem(error: Exception) -> str:
    if isinstance(error, ValidationError) and error.errors():
        first = error.errors()[0]
        where = "/".join(str(part) for part in first["loc"]) or "(body)"
        return f"not a retention work item: #/{where}: {first['msg']}"
    return "not a retention work item: unreadable JSON"


def pass_items(shard_count: int, at: datetime) -> list[ShardSweep | Housekeeping]:
    """What one timer firing sends: a sweep per shard, then the housekeeping."""
    return [*(ShardSweep(shard=shard, at=at) for shard in range(shard_count)), Housekeeping(at=at)]


def review_batches(entries: Iterable[DueWork], at: datetime, size: int) -> list[AccountReview]:
    """Due entries in batches of about `size`, never splitting one account's entries over two batches."""
    batches: list[AccountReview] = []
    current: list[DueWork] = []
    accounts: set[str] = set()
    for entry in _grouped_by_account(list(entries)):
        new_account = entry.account_id not in accounts
        if current and new_account and (len(accounts) >= size or len(current) >= MAX_BATCH_SIZE):
            batches.append(AccountReview(at=at, entries=tuple(current)))
            current, accounts = [], set()
        if len(current) >= MAX_BATCH_SIZE:
            # One account with more entries than a message holds: its review reads the account whole anyway, and
            # the entries left over are consumed by the next pass.
            continue
        current.append(entry)
        accounts.add(entry.account_id)
    if current:
        batches.append(AccountReview(at=at, entries=tuple(current)))
    return batches


def _grouped_by_account(entries: Sequence[DueWork]) -> list[DueWork]:
    first_seen = {entry.account_id: index for index, entry in reversed(list(enumerate(entries)))}
    return sorted(entries, key=lambda entry: (first_seen[entry.account_id], entry.due_at))

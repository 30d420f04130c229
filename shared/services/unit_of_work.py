"""Change one account: read it fresh, decide, commit; a lost race reads again and decides again."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.domain.errors import ConcurrencyError
from shared.domain.partition import AccountPartition
from shared.services.ports import AccountUnitOfWork

T = TypeVar("T")


def with_fresh_partition(
    accounts: AccountUnitOfWork,
    account_id: str,
    change: Callable[[AccountPartition], T],
    *,
    attempts: int = 5,
    known: AccountPartition | None = None,
) -> T:
    """Run `change` on a freshly read partition and commit; on a lost race read again and redo it.

    `known`, a partition this caller has just committed (so it carries the ETags of that commit), is used for the
    first attempt instead of a read; if someone wrote since, the commit loses and the next attempt reads.
    """
    for attempt in range(1, attempts + 1):
        partition = known if attempt == 1 and known is not None else accounts.load(account_id)
        result = change(partition)
        try:
            accounts.commit(partition)
        except ConcurrencyError:
            if attempt == attempts:
                raise
            continue
        return result
    raise AssertionError("unreachable")

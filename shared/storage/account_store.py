"""The account partition in table `accounts`: read in one query, written in ETag-checked transactions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from azure.core import MatchConditions
from azure.data.tables import TableTransactionError, UpdateMode
from pydantic import BaseModel

from shared.domain.errors import ConcurrencyError
from shared.domain.model import Account
from shared.domain.partition import ACCOUNT_ROW, AccountPartition, RowId
from shared.storage.codec import data_properties, decode
from shared.storage.layout import (
    ACCOUNTS_TABLE,
    account_row_identity,
    account_row_key,
    account_row_key_for,
    account_row_kind,
)
from shared.storage.tables import TableStorage, storage_errors

MAX_TRANSACTION_OPERATIONS = 100
_CONFLICT_STATUSES = {409, 412}


def to_entity(partition_key: str, model: BaseModel, **extra: Any) -> dict[str, Any]:
    """The `accounts` entity of one row of a partition."""
    return {"PartitionKey": partition_key, "RowKey": account_row_key_for(model), **extra, **data_properties(model)}


def from_entity(entity: dict[str, Any]) -> BaseModel:
    return decode(account_row_kind(entity["RowKey"]), entity)


class AccountStore:
    """Reads and writes account partitions of the `accounts` table."""

    def __init__(self, storage: TableStorage) -> None:
        self._table = storage.table(ACCOUNTS_TABLE)

    def load(self, account_id: str) -> AccountPartition:
        """Read the whole partition in one query (one round trip per 1,000 rows)."""
        partition = AccountPartition(account_id=account_id)
        with storage_errors():
            entities = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": account_id})
            for entity in entities:
                identity = account_row_identity(entity["RowKey"])
                model = from_entity(entity)
                partition.etags[identity] = str(entity.metadata["etag"])
                if isinstance(model, Account):
                    partition.account = model
                    partition.version = int(entity.get("Version", 0))
                else:
                    partition.rows[identity] = model
        return partition

    def commit(self, partition: AccountPartition) -> None:
        """Write the staged changes: the root row's ETag guards the first transaction against any other writer.

        More than 100 operations go out in several transactions in the order they were staged; a service that
        stages its processed-event marker last is therefore completed, not repeated, by a retry.
        """
        if not partition.has_changes:
            return
        if partition.account is None:
            raise ValueError("an account partition needs its account row before anything is written to it")
        operations = [self._root_operation(partition), *self._row_operations(partition)]
        etags: dict[RowId, str] = {}
        with storage_errors():
            for start in range(0, len(operations), MAX_TRANSACTION_OPERATIONS):
                chunk = operations[start : start + MAX_TRANSACTION_OPERATIONS]
                try:
                    results = self._table.submit_transaction(chunk)
                except TableTransactionError as error:
                    if error.status_code in _CONFLICT_STATUSES:
                        raise ConcurrencyError(f"account {partition.account_id} changed meanwhile") from error
                    raise
                for operation, result in zip(chunk, results, strict=True):
                    if operation[0] != "delete" and "etag" in result:
                        etags[account_row_identity(operation[1]["RowKey"])] = result["etag"]
        partition.mark_committed(etags)

    def _root_operation(self, partition: AccountPartition) -> tuple[Any, ...]:
        assert partition.account is not None
        entity = to_entity(partition.account_id, partition.account, Version=partition.version + 1)
        if not partition.exists:
            return ("create", entity)
        return (
            "update",
            entity,
            {
                "mode": UpdateMode.REPLACE,
                "etag": partition.etags[ACCOUNT_ROW],
                "match_condition": MatchConditions.IfNotModified,
            },
        )

    def _row_operations(self, partition: AccountPartition) -> Iterable[tuple[Any, ...]]:
        for identity, model in partition.staged():
            if identity == ACCOUNT_ROW:
                continue
            etag = partition.etags.get(identity)
            guard = {"etag": etag, "match_condition": MatchConditions.IfNotModified}
            if model is None:
                if etag is not None:
                    key = {"PartitionKey": partition.account_id, "RowKey": account_row_key(identity)}
                    yield ("delete", key, guard)
            elif etag is None:
                yield ("create", to_entity(partition.account_id, model))
            else:
                yield ("update", to_entity(partition.account_id, model), {"mode": UpdateMode.REPLACE, **guard})

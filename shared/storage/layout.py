"""Where every entity kind lives in Table Storage. The README's storage section describes the same layout.

Table `accounts`: one partition per billing account (PartitionKey = account id), so that everything that must
change together can change in one entity-group transaction. RowKey = `<prefix>:<id>`; the root row `account`
carries a version that every write bumps with its ETag, which makes each commit conflict with any concurrent one.
Table `due`: when to look at an account again (see due_index.py).
Table `audit`: what stays after a subscription's data is deleted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from shared.domain.idempotency import IdempotencyRecord
from shared.domain.model import Account, Alert, Charge, PaymentMethod, ProcessedEvent, Subscription
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.settlement import Settlement

ACCOUNTS_TABLE = "accounts"
DUE_TABLE = "due"
AUDIT_TABLE = "audit"
WEBHOOKS_TABLE = "webhooks"
GATEWAY_TABLE = "gateway"
REJECTIONS_TABLE = "rejections"
ALL_TABLES = (ACCOUNTS_TABLE, DUE_TABLE, AUDIT_TABLE, REJECTIONS_TABLE, WEBHOOKS_TABLE, GATEWAY_TABLE)

ROOT_ROW_KEY = "account"

# prefix -> (model, attribute that holds the id). Every kind stored in account partitions is listed here.
ROW_KINDS: dict[str, tuple[type[BaseModel], str]] = {
    "pm": (PaymentMethod, "id"),
    "sub": (Subscription, "id"),
    "chg": (Charge, "invoice_id"),
    "alert": (Alert, "id"),
    "ntf": (Notification, "id"),
    "out": (LifecycleEvent, "id"),
    "evt": (ProcessedEvent, "event_id"),
    "stl": (Settlement, "id"),
    "idem": (IdempotencyRecord, "settlement_id"),
}
_PREFIX_BY_MODEL = {model: prefix for prefix, (model, _) in ROW_KINDS.items()}

# Table Storage string properties hold at most 64 KiB (32K UTF-16 characters); longer JSON spills over.
_DATA_CHUNK = 30_000


def row_key_for(model: BaseModel) -> str:
    if isinstance(model, Account):
        return ROOT_ROW_KEY
    prefix = _PREFIX_BY_MODEL.get(type(model))
    if prefix is None:
        raise TypeError(f"{type(model).__name__} is not stored in account partitions")
    return f"{prefix}:{getattr(model, ROW_KINDS[prefix][1])}"


def row_key(model_type: type[BaseModel], identifier: str) -> str:
    return f"{_PREFIX_BY_MODEL[model_type]}:{identifier}"


def to_entity(partition_key: str, model: BaseModel, **extra: Any) -> dict[str, Any]:
    data = model.model_dump_json()
    entity: dict[str, Any] = {"PartitionKey": partition_key, "RowKey": row_key_for(model), **extra}
    for index in range(0, max(len(data), 1), _DATA_CHUNK):
        entity["Data" if index == 0 else f"Data{index // _DATA_CHUNK}"] = data[index : index + _DATA_CHUNK]
    return entity


def entity_json(entity: dict[str, Any]) -> str:
    parts = [entity.get("Data", "")]
    index = 1
    while f"Data{index}" in entity:
        parts.append(entity[f"Data{index}"])
        index += 1
    return "".join(parts)


def from_entity(entity: dict[str, Any]) -> BaseModel:
    key: str = entity["RowKey"]
    if key == ROOT_ROW_KEY:
        return Account.model_validate_json(entity_json(entity))
    prefix, _, _ = key.partition(":")
    if prefix not in ROW_KINDS:
        raise ValueError(f"unknown row kind {prefix!r} in account partition")
    return ROW_KINDS[prefix][0].model_validate_json(entity_json(entity))

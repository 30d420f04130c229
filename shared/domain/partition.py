"""Everything one billing account holds, as one unit: read together, changed together, committed together.

A partition is the aggregate the services decide on. It knows each row by its identity (model type and id), the
version token each stored row was read with (an ETag in Table Storage), and the changes staged since it was read;
it knows nothing of how or where it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel

from shared.domain.idempotency import IdempotencyRecord
from shared.domain.model import Account, Alert, Charge, PaymentMethod, ProcessedEvent, Subscription
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.settlement import Settlement

M = TypeVar("M", bound=BaseModel)
# The identity of a row in a partition: its kind and its id within that kind.
RowId = tuple[type[BaseModel], str]
# The account row itself: its version token guards every commit of the partition.
ACCOUNT_ROW: RowId = (Account, "")
# A queue message lives at most 7 days; a repeat older than a month is not a delivery retry any more.
PROCESSED_EVENT_RETENTION = timedelta(days=30)

# Every kind a partition holds, with the attribute that names a row of that kind.
ROW_ID_FIELDS: dict[type[BaseModel], str] = {
    PaymentMethod: "id",
    Subscription: "id",
    Charge: "invoice_id",
    Alert: "id",
    Notification: "id",
    LifecycleEvent: "id",
    ProcessedEvent: "event_id",
    Settlement: "id",
    IdempotencyRecord: "settlement_id",
}


def row_id(model: BaseModel) -> RowId:
    if isinstance(model, Account):
        return ACCOUNT_ROW
    id_field = ROW_ID_FIELDS.get(type(model))
    if id_field is None:
        raise TypeError(f"{type(model).__name__} is not kept in an account partition")
    return (type(model), str(getattr(model, id_field)))


@dataclass
class AccountPartition:
    """Everything stored for one account, plus the changes a service made to it and has not committed yet."""

    account_id: str
    account: Account | None = None
    version: int = 0
    rows: dict[RowId, BaseModel] = field(default_factory=dict)
    etags: dict[RowId, str] = field(default_factory=dict)
    _changed: dict[RowId, BaseModel | None] = field(default_factory=dict)

    @property
    def exists(self) -> bool:
        return ACCOUNT_ROW in self.etags

    @property
    def has_changes(self) -> bool:
        return bool(self._changed) or (self.account is not None and not self.exists)

    def all(self, model_type: type[M]) -> list[M]:
        return [row for row in self.rows.values() if isinstance(row, model_type)]

    def get(self, model_type: type[M], identifier: str) -> M | None:
        row = self.rows.get((model_type, identifier))
        return row if isinstance(row, model_type) else None

    def holds(self, model: BaseModel) -> bool:
        """True if a row with the identity of `model` is there (whatever its content)."""
        return row_id(model) in self.rows

    def stored(self, model: BaseModel) -> BaseModel | None:
        """The row with the identity of `model`, as it is now."""
        return self.rows.get(row_id(model))

    @property
    def payment_methods(self) -> list[PaymentMethod]:
        return self.all(PaymentMethod)

    @property
    def subscriptions(self) -> list[Subscription]:
        return self.all(Subscription)

    @property
    def charges(self) -> list[Charge]:
        return self.all(Charge)

    @property
    def alerts(self) -> list[Alert]:
        return self.all(Alert)

    @property
    def notifications(self) -> list[Notification]:
        return self.all(Notification)

    @property
    def pending_events(self) -> list[LifecycleEvent]:
        return self.all(LifecycleEvent)

    def has_processed(self, event_id: str) -> ProcessedEvent | None:
        return self.get(ProcessedEvent, event_id)

    def set_account(self, account: Account) -> None:
        if account != self.account:
            self.account = account
            self._changed[ACCOUNT_ROW] = account

    def put(self, *models: BaseModel) -> None:
        """Stage new or changed rows; rows equal to what is stored are not written again."""
        for model in models:
            if isinstance(model, Account):
                self.set_account(model)
                continue
            key = row_id(model)
            if self.rows.get(key) != model:
                self.rows[key] = model
                self._changed[key] = model

    def record_processed(self, marker: ProcessedEvent) -> None:
        """Stage an event's processed marker (stage it last) and drop markers older than the replay window."""
        horizon = marker.processed_at - PROCESSED_EVENT_RETENTION
        self.delete(*(old for old in self.all(ProcessedEvent) if old.processed_at < horizon))
        self.put(marker)

    def delete(self, *models: BaseModel) -> None:
        for model in models:
            key = row_id(model)
            if key in self.rows:
                del self.rows[key]
                self._changed[key] = None

    def staged(self) -> list[tuple[RowId, BaseModel | None]]:
        return list(self._changed.items())

    def mark_committed(self, etags: dict[RowId, str]) -> None:
        for key, value in self._changed.items():
            if value is None:
                self.etags.pop(key, None)
        self.etags.update(etags)
        self._changed.clear()
        self.version += 1

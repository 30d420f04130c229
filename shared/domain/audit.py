"""What the audit table keeps: what stays after a subscription's data is deleted (ids, dates, amounts, the reason),
every event whose account snapshot disagreed with the account (ids and field names), and every collection hold set,
changed or released (with support's reason: the audit table is read by people with a need, it is not a log)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from shared.domain.lifecycle import TransitionReason
from shared.domain.model import AccountField, ChargeStatus, Frozen, Identifier
from shared.domain.money import Money


class AuditedCharge(Frozen):
    invoice_id: Identifier
    amount: Money
    due_date: date
    status: ChargeStatus
    paid_at: datetime | None = None
    settlement_id: str | None = None


class DeletionRecord(Frozen):
    """The audit record of one deleted subscription, written once before its data is purged."""

    account_id: Identifier
    subscription_id: Identifier
    service: str
    reason: TransitionReason = TransitionReason.RETENTION_ENDED
    past_due_since: datetime | None
    disabled_at: datetime | None
    deleted_at: datetime
    purged_at: datetime
    charges: tuple[AuditedCharge, ...] = ()
    outstanding: tuple[Money, ...] = ()
    settlement_ids: tuple[str, ...] = ()
    payment_method_ids: tuple[str, ...] = ()


class SnapshotDisagreement(Frozen):
    """An event's account snapshot named another admin or notification address than the account has.

    The snapshot was applied for its charges only; the fields it disagreed on kept their values. One record per event.
    """

    account_id: Identifier
    event_id: Identifier
    event_type: str
    fields: tuple[AccountField, ...]
    recorded_at: datetime


class HoldAction(StrEnum):
    SET = "set"
    CHANGED = "changed"
    RELEASED = "released"


class HoldRecord(Frozen):
    """One change of an account's collection hold: what, when, by whom, and the hold's terms at that moment."""

    account_id: Identifier
    action: HoldAction
    at: datetime
    by: Identifier
    reason: str
    since: datetime
    until: datetime | None = None

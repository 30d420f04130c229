"""Lifecycle events out: every event type, its subject, its data and its id, defined once for every emitter.

The billing engine and resource providers read them from the lifecycle queue as CloudEvents 1.0
(`LifecycleEvent.to_cloudevent`). schemas/lifecycle-events.schema.json states the same contract for them and
docs/lifecycle-events.md explains it. Delivery is at least once; consumers de-duplicate by `id`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from shared.domain.effect_ids import effect_id
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import EmailAddress, Frozen, Identifier, PaymentMethodKind, Subscription
from shared.domain.outbox import LifecycleEvent
from shared.domain.retention_policy import RetentionPolicy, deletion_date
from shared.domain.settlement import Settlement

__all__ = [
    "MAX_SUBSCRIPTIONS_PER_EVENT",
    "EmailDelivery",
    "EnablingReason",
    "EventCause",
    "LifecycleEventType",
    "NotificationAddressUndeliverableData",
    "PaymentMethodReplacedData",
    "RetentionStep",
    "SubscriptionDeletedData",
    "SubscriptionDisabledData",
    "SubscriptionEnabledData",
    "UndeliverableReason",
    "event_id",
    "notification_address_subject",
    "notification_address_undeliverable",
    "payment_method_replaced",
    "payment_method_subject",
    "subscription_deleted",
    "subscription_disabled",
    "subscription_enabled",
    "subscription_subject",
]


class LifecycleEventType(StrEnum):
    SUBSCRIPTION_ENABLED = "subscription.enabled"
    SUBSCRIPTION_DISABLED = "subscription.disabled"
    SUBSCRIPTION_DELETED = "subscription.deleted"
    PAYMENT_METHOD_REPLACED = "payment_method.replaced"
    NOTIFICATION_ADDRESS_UNDELIVERABLE = "notification_address.undeliverable"


class RetentionStep(Frozen):
    """A step of the retention timer as the cause of an event, named by the moment the step counts from."""

    reference: datetime | None


class EmailDelivery(Frozen):
    """A delivery report of one email as the cause of an event, named by the id ACS knows the message by."""

    message_id: str = Field(min_length=1, max_length=256)

    @property
    def id(self) -> str:
        return self.message_id


# What an event happened because of: a settlement (card, wire), a step of the retention timer, an email's delivery.
EventCause = Settlement | RetentionStep | EmailDelivery


def _utc_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _utc_day(value: object) -> object:
    return value.astimezone(UTC).date() if isinstance(value, datetime) else value


UtcTimestamp = Annotated[datetime, PlainSerializer(_utc_timestamp, return_type=str)]
UtcDay = Annotated[date, BeforeValidator(_utc_day)]
EnablingReason = Literal[
    TransitionReason.BALANCE_SETTLED, TransitionReason.PAYMENT_RECEIVED, TransitionReason.SELF_HEALED
]


class _EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


class _SubscriptionEventData(_EventData):
    account_id: Identifier
    subscription_id: Identifier
    service: str = Field(max_length=128)


class SubscriptionEnabledData(_SubscriptionEventData):
    state: Literal[SubscriptionState.ENABLED]
    enabled_at: UtcTimestamp
    reason: EnablingReason
    # The payment that brought it back; None when the timer healed it without a settlement at hand.
    settlement_id: Identifier | None
    payment_method_id: Identifier | None


class SubscriptionDisabledData(_SubscriptionEventData):
    state: Literal[SubscriptionState.DISABLED]
    disabled_at: UtcTimestamp
    deletion_date: UtcDay


class SubscriptionDeletedData(_SubscriptionEventData):
    state: Literal[SubscriptionState.DELETED]
    deleted_at: UtcTimestamp


# A payment_method.replaced lists at most this many subscriptions, so that one event always fits a queue message
# (250 ids of the longest form, 128 characters, are about 33 KB; a message holds 48 KiB before base64). A settlement
# that moved more sends several events, each with the next slice: see payment_method_replaced.
MAX_SUBSCRIPTIONS_PER_EVENT = 250


class PaymentMethodReplacedData(_EventData):
    account_id: Identifier
    previous_payment_method_id: Identifier
    payment_method_id: Identifier
    payment_method_kind: PaymentMethodKind
    subscription_ids: tuple[Identifier, ...] = Field(min_length=1, max_length=MAX_SUBSCRIPTIONS_PER_EVENT)
    settlement_id: Identifier
    part: int = Field(ge=1)
    parts: int = Field(ge=1)


# The delivery statuses that make an address undeliverable (shared/domain/delivery_reports.py decides which).
UndeliverableReason = Literal["bounced", "suppressed", "failed"]


class NotificationAddressUndeliverableData(_EventData):
    account_id: Identifier
    # The billing engine gave pastdue this address (payment.failed) and is where it gets corrected; logs never carry it.
    notification_email: EmailAddress
    reason: UndeliverableReason
    status_detail: str | None = Field(max_length=512)
    message_id: str = Field(min_length=1, max_length=256)
    reported_at: UtcTimestamp


def subscription_subject(account_id: str, subscription_id: str) -> str:
    return f"/accounts/{account_id}/subscriptions/{subscription_id}"


def payment_method_subject(account_id: str, payment_method_id: str) -> str:
    return f"/accounts/{account_id}/paymentMethods/{payment_method_id}"


def notification_address_subject(account_id: str) -> str:
    return f"/accounts/{account_id}/notificationAddress"


def event_id(event_type: LifecycleEventType, cause: EventCause, account_id: str, subject_id: str) -> str:
    """The stable id of an event: the same cause gives the same id however often the event is published."""
    # Two derivations because published ids are contracts (consumers de-duplicate by them): events caused by
    # something with an id of its own (a settlement, which already names its account; an email's message id) are
    # `le-` + a hash of that id, type and subject; events of a retention step have always had the timer's effect-id
    # form, account-qualified.
    if isinstance(cause, Settlement | EmailDelivery):
        return "le-" + hashlib.sha256(f"{cause.id}|{event_type.value}|{subject_id}".encode()).hexdigest()[:32]
    return effect_id(event_type.value, cause.reference, f"{account_id}.{subject_id}")


def subscription_enabled(
    account_id: str, subscription: Subscription, *, cause: EventCause, reason: TransitionReason, at: datetime
) -> LifecycleEvent:
    """The subscription runs again: paid by a settlement (`cause`), or healed by the timer once all was paid."""
    settlement = cause if isinstance(cause, Settlement) else None
    data = SubscriptionEnabledData(
        account_id=account_id,
        subscription_id=subscription.id,
        service=subscription.service,
        state=subscription.state,
        enabled_at=at,
        reason=reason,
        settlement_id=settlement.id if settlement else None,
        payment_method_id=settlement.payment_method_id if settlement else None,
    )
    return _event(LifecycleEventType.SUBSCRIPTION_ENABLED, cause, data, at)


def subscription_disabled(
    account_id: str, subscription: Subscription, policy: RetentionPolicy, *, cause: EventCause, at: datetime
) -> LifecycleEvent:
    """The service was cancelled: resources stop; the data goes on the policy's deletion date."""
    data = SubscriptionDisabledData(
        account_id=account_id,
        subscription_id=subscription.id,
        service=subscription.service,
        state=subscription.state,
        disabled_at=subscription.disabled_at,
        deletion_date=deletion_date(subscription, policy),
    )
    return _event(LifecycleEventType.SUBSCRIPTION_DISABLED, cause, data, at)


def subscription_deleted(
    account_id: str, tombstone: Subscription, *, cause: EventCause, at: datetime
) -> LifecycleEvent:
    """The subscription and its data are gone for good: resources are removed."""
    data = SubscriptionDeletedData(
        account_id=account_id,
        subscription_id=tombstone.id,
        service=tombstone.service,
        state=tombstone.state,
        deleted_at=at,
    )
    return _event(LifecycleEventType.SUBSCRIPTION_DELETED, cause, data, at)


def payment_method_replaced(account_id: str, settlement: Settlement, *, at: datetime) -> tuple[LifecycleEvent, ...]:
    """A succeeded settlement moved its subscriptions off the failed method onto the one that paid.

    One event while the subscriptions fit one (MAX_SUBSCRIPTIONS_PER_EVENT), with the id it has always had; beyond,
    part n of N lists the n-th slice of the subscriptions, in order, under the id `<that id>.part<n>of<N>`.
    """
    event_type = LifecycleEventType.PAYMENT_METHOD_REPLACED
    whole_id = event_id(event_type, settlement, account_id, settlement.payment_method_id)
    moved = settlement.switched_subscription_ids
    step = MAX_SUBSCRIPTIONS_PER_EVENT
    slices = [moved[start : start + step] for start in range(0, len(moved), step)]
    parts = len(slices)
    events = []
    for part, subscription_ids in enumerate(slices, start=1):
        data = PaymentMethodReplacedData(
            account_id=account_id,
            previous_payment_method_id=settlement.failed_payment_method_id,
            payment_method_id=settlement.payment_method_id,
            payment_method_kind=settlement.payment_method_kind,
            subscription_ids=subscription_ids,
            settlement_id=settlement.id,
            part=part,
            parts=parts,
        )
        events.append(
            LifecycleEvent(
                id=whole_id if parts == 1 else f"{whole_id}.part{part}of{parts}",
                type=event_type.value,
                subject=payment_method_subject(account_id, settlement.payment_method_id),
                time=at,
                data=data.model_dump(mode="json", by_alias=True),
            )
        )
    return tuple(events)


def notification_address_undeliverable(
    account_id: str,
    address: str,
    *,
    reason: UndeliverableReason,
    detail: str | None,
    cause: EmailDelivery,
    reported_at: datetime,
    at: datetime,
) -> LifecycleEvent:
    """Emails to the account's notification address cannot be delivered: the billing engine should get a new one."""
    data = NotificationAddressUndeliverableData(
        account_id=account_id,
        notification_email=address,
        reason=reason,
        status_detail=detail,
        message_id=cause.message_id,
        reported_at=reported_at,
    )
    event_type = LifecycleEventType.NOTIFICATION_ADDRESS_UNDELIVERABLE
    return LifecycleEvent(
        id=event_id(event_type, cause, account_id, account_id),
        type=event_type.value,
        subject=notification_address_subject(account_id),
        time=at,
        data=data.model_dump(mode="json", by_alias=True),
    )


def _event(
    event_type: LifecycleEventType, cause: EventCause, data: _SubscriptionEventData, at: datetime
) -> LifecycleEvent:
    return LifecycleEvent(
        id=event_id(event_type, cause, data.account_id, data.subscription_id),
        type=event_type.value,
        subject=subscription_subject(data.account_id, data.subscription_id),
        time=at,
        data=data.model_dump(mode="json", by_alias=True),
    )

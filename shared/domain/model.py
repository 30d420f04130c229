"""The billing account and everything that belongs to it; all of it lives in the account's partition."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.domain.errors import InvalidTransitionError
from shared.domain.lifecycle import (
    StateTransition,
    SubscriptionState,
    TransitionReason,
    check_transition,
)
from shared.domain.money import Currency, Money

# Usable as a Table Storage key: no / \ # ? or control characters, at most 128 characters.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
EmailAddress = Annotated[
    str, StringConstraints(pattern=r"^[^@\s<>\"]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$", max_length=254)
]
HISTORY_LIMIT = 50


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Account(Frozen):
    id: Identifier
    admin_principal_id: Identifier
    notification_email: EmailAddress
    locale: Locale
    currency: Currency


class PaymentMethodKind(StrEnum):
    CARD = "card"
    INVOICE = "invoice"


class PaymentMethodStatus(StrEnum):
    ACTIVE = "active"
    FAILED = "failed"


class DeclineReason(StrEnum):
    INSUFFICIENT_FUNDS = "insufficient_funds"
    DO_NOT_HONOR = "do_not_honor"
    PROCESSING_ERROR = "processing_error"
    CARD_DECLINED = "card_declined"
    EXPIRED_CARD = "expired_card"
    STOLEN_CARD = "stolen_card"
    LOST_CARD = "lost_card"
    INVALID_ACCOUNT = "invalid_account"
    INVOICE_OVERDUE = "invoice_overdue"

    @property
    def is_hard(self) -> bool:
        """A hard decline will not succeed on retry: the customer must change the payment method."""
        return self in _HARD_DECLINES


_HARD_DECLINES = frozenset(
    {DeclineReason.EXPIRED_CARD, DeclineReason.STOLEN_CARD, DeclineReason.LOST_CARD, DeclineReason.INVALID_ACCOUNT}
)


class PaymentMethod(Frozen):
    """A way to pay. Cards hold a gateway token and display hints only, never a card number."""

    id: Identifier
    kind: PaymentMethodKind
    brand: str | None = Field(default=None, max_length=32)
    last4: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    gateway_token: str | None = Field(default=None, max_length=256)
    status: PaymentMethodStatus = PaymentMethodStatus.ACTIVE
    failed_reason: DeclineReason | None = None
    failed_at: datetime | None = None

    def mark_failed(self, reason: DeclineReason, at: datetime) -> Self:
        return self.model_copy(update={"status": PaymentMethodStatus.FAILED, "failed_reason": reason, "failed_at": at})

    def mark_active(self) -> Self:
        return self.model_copy(update={"status": PaymentMethodStatus.ACTIVE, "failed_reason": None, "failed_at": None})

    @property
    def display_name(self) -> str:
        if self.kind is PaymentMethodKind.INVOICE:
            return "invoice"
        return f"{(self.brand or 'card').title()} •••• {self.last4 or '????'}"


class Subscription(Frozen):
    id: Identifier
    name: str = Field(max_length=128)
    service: str = Field(max_length=128)
    payment_method_id: Identifier
    state: SubscriptionState = SubscriptionState.ENABLED
    past_due_since: datetime | None = None
    disabled_at: datetime | None = None
    history: tuple[StateTransition, ...] = ()

    def transition(self, target: SubscriptionState, reason: TransitionReason, at: datetime) -> Self:
        """Move to `target` by the lifecycle table, keeping the reason and time; raises InvalidTransitionError."""
        check_transition(self.state, target)
        update: dict[str, object] = {
            "state": target,
            "history": (*self.history, StateTransition(from_state=self.state, to_state=target, reason=reason, at=at))[
                -HISTORY_LIMIT:
            ],
        }
        if target is SubscriptionState.PAST_DUE and self.past_due_since is None:
            update["past_due_since"] = at
        if target is SubscriptionState.DISABLED:
            update["disabled_at"] = at
        if target is SubscriptionState.ENABLED:
            update["past_due_since"] = None
            update["disabled_at"] = None
        return self.model_copy(update=update)

    def reenable(self, reason: TransitionReason, at: datetime) -> Self:
        if self.state is SubscriptionState.DELETED:
            raise InvalidTransitionError("a deleted subscription cannot be re-enabled")
        if self.state is SubscriptionState.ENABLED:
            return self
        return self.transition(SubscriptionState.ENABLED, reason, at)

    def switch_payment_method(self, payment_method_id: str) -> Self:
        return self.model_copy(update={"payment_method_id": payment_method_id})


class ChargeStatus(StrEnum):
    OUTSTANDING = "outstanding"
    PAID = "paid"


class Charge(Frozen):
    """An invoice amount that was not collected, on the payment method it failed on."""

    invoice_id: Identifier
    subscription_id: Identifier
    service: str = Field(max_length=128)
    amount: Money
    due_date: date
    payment_method_id: Identifier
    status: ChargeStatus = ChargeStatus.OUTSTANDING
    paid_at: datetime | None = None
    settlement_id: str | None = None

    @property
    def is_outstanding(self) -> bool:
        return self.status is ChargeStatus.OUTSTANDING

    def mark_paid(self, settlement_id: str, at: datetime) -> Self:
        return self.model_copy(update={"status": ChargeStatus.PAID, "paid_at": at, "settlement_id": settlement_id})


class AlertKind(StrEnum):
    PAYMENT_FAILED = "payment_failed"
    REMINDER = "reminder"
    WILL_BE_DISABLED = "will_be_disabled"
    DISABLED = "disabled"
    DELETION_SCHEDULED = "deletion_scheduled"
    REENABLED = "reenabled"
    NOTIFICATION_ADDRESS_UNDELIVERABLE = "notification_address_undeliverable"


class Alert(Frozen):
    """A banner the portal shows the account; resolved once its cause is gone."""

    id: Identifier
    kind: AlertKind
    payment_method_id: Identifier | None = None
    subscription_ids: tuple[str, ...] = ()
    created_at: datetime
    effective_date: date | None = None
    resolved_at: datetime | None = None
    # An undeliverable notification address: which one, why (a delivery status and the receiver's words), and the
    # delivery attempt that showed it.
    email_address: EmailAddress | None = None
    reason: str | None = Field(default=None, max_length=32)
    detail: str | None = Field(default=None, max_length=512)
    reported_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    def resolve(self, at: datetime) -> Self:
        return self if self.resolved_at else self.model_copy(update={"resolved_at": at})


class ProcessedEvent(Frozen):
    """A marker that an event's effects were committed, written in the same transaction as those effects."""

    event_id: Identifier
    event_type: str
    payload_hash: str
    processed_at: datetime

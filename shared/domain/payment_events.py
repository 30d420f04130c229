"""The events the billing engine puts on the `payment-failed` queue: CloudEvents 1.0 JSON, camelCase fields.

Incoming events tolerate unknown fields (events evolve); unknown event types are rejected with a reason.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel

from shared.domain.model import (
    DEFAULT_DUNNING_POLICY,
    Account,
    ChangeSource,
    Charge,
    DeclineReason,
    EmailAddress,
    FieldChange,
    Identifier,
    Locale,
    PaymentMethod,
    PaymentMethodKind,
)
from shared.domain.money import DECIMAL_STRING_PATTERN, Currency, Money

PAYMENT_FAILED = "payment.failed"
PAYMENT_RECEIVED = "payment.received"
ACCOUNT_UPDATED = "account.updated"


# The shape of a decimal string; whether its decimals suit the currency is checked with the currency.
DecimalAmount = Annotated[str, StringConstraints(pattern=DECIMAL_STRING_PATTERN)]


class EventModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", alias_generator=to_camel, populate_by_name=True)


class AccountSnapshot(EventModel):
    id: Identifier
    admin_principal_id: Identifier
    notification_email: EmailAddress
    locale: Locale
    currency: Currency
    # Which configured dunning policy the account follows (absent: `default`); only the snapshot that creates the
    # account sets it, as with the admin and the address.
    dunning_policy: Identifier | None = None

    def to_account(self, created: FieldChange | None = None) -> Account:
        """A new account from the snapshot; `created` dates its admin, notification address and dunning policy."""
        return Account(
            id=self.id,
            admin_principal_id=self.admin_principal_id,
            notification_email=self.notification_email,
            locale=self.locale,
            currency=self.currency,
            admin_changed=created,
            notification_email_changed=created,
            dunning_policy=self.dunning_policy or DEFAULT_DUNNING_POLICY,
            dunning_policy_changed=created if self.dunning_policy is not None else None,
        )


class FailedPaymentMethod(EventModel):
    id: Identifier
    kind: PaymentMethodKind
    brand: str | None = Field(default=None, max_length=32)
    last4: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    # The gateway's reusable reference for this method (never a card number): what an automatic retry charges.
    gateway_token: Identifier | None = None

    def to_payment_method(self) -> PaymentMethod:
        return PaymentMethod(
            id=self.id,
            kind=self.kind,
            brand=self.brand,
            last4=self.last4,
            gateway_token=self.gateway_token,
            auto_retry=self.gateway_token is not None,
        )


class UnpaidCharge(EventModel):
    invoice_id: Identifier
    subscription_id: Identifier
    service: str = Field(min_length=1, max_length=128)
    amount: DecimalAmount
    currency: Currency
    due_date: date

    @field_validator("amount")
    @classmethod
    def _more_than_zero(cls, amount: str) -> str:
        # An unpaid charge of nothing is a producer bug; recorded, it would put a subscription past due for 0.00.
        if Decimal(amount) <= 0:
            raise ValueError("an unpaid charge must be more than zero")
        return amount

    def to_charge(self, payment_method_id: str) -> Charge:
        return Charge(
            invoice_id=self.invoice_id,
            subscription_id=self.subscription_id,
            service=self.service,
            amount=Money.parse(self.amount, self.currency),
            due_date=self.due_date,
            payment_method_id=payment_method_id,
        )


class SubscriptionOnMethod(EventModel):
    id: Identifier
    name: str = Field(min_length=1, max_length=128)
    service: str = Field(min_length=1, max_length=128)


class PaymentFailedData(EventModel):
    account: AccountSnapshot
    payment_method: FailedPaymentMethod
    reason: DeclineReason
    charges: tuple[UnpaidCharge, ...] = Field(min_length=1, max_length=1000)
    subscriptions: tuple[SubscriptionOnMethod, ...] = Field(default=(), max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> PaymentFailedData:
        for index, charge in enumerate(self.charges):
            if charge.currency != self.account.currency:
                raise ValueError(f"charges[{index}].currency {charge.currency} differs from the account's currency")
            Money.parse(charge.amount, charge.currency)
        return self


class PaymentReceivedData(EventModel):
    account_id: Identifier
    reference: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._:/+-]*$")
    amount: DecimalAmount
    currency: Currency

    @model_validator(mode="after")
    def _amount_fits_currency(self) -> PaymentReceivedData:
        Money.parse(self.amount, self.currency)
        return self

    @property
    def money(self) -> Money:
        return Money.parse(self.amount, self.currency)


class AccountUpdatedData(EventModel):
    """A new admin principal, notification address or dunning policy (any of them); what is absent stays as it is."""

    account_id: Identifier
    admin_principal_id: Identifier | None = None
    notification_email: EmailAddress | None = None
    dunning_policy: Identifier | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> AccountUpdatedData:
        if self.admin_principal_id is None and self.notification_email is None and self.dunning_policy is None:
            raise ValueError("name adminPrincipalId, notificationEmail, dunningPolicy or several of them")
        return self


class CloudEvent(EventModel):
    specversion: Literal["1.0"]
    id: Identifier
    source: str = Field(min_length=1, max_length=1024)
    time: datetime | None = None


class PaymentFailedEvent(CloudEvent):
    type: Literal["payment.failed"]
    data: PaymentFailedData

    def snapshot_change(self, now: datetime) -> FieldChange:
        """What dates the admin and address of an account this event creates: its time (UTC if it names no
        offset), or `now` if that is earlier or the event has no time."""
        sent = self.time if self.time is None or self.time.tzinfo else self.time.replace(tzinfo=UTC)
        return FieldChange(at=min(sent or now, now), source=ChangeSource.SNAPSHOT, cause=self.id)


class PaymentReceivedEvent(CloudEvent):
    type: Literal["payment.received"]
    data: PaymentReceivedData


class AccountUpdatedEvent(CloudEvent):
    type: Literal["account.updated"]
    time: AwareDatetime  # required: changes are applied in the order of their time, not of their arrival
    data: AccountUpdatedData

    def change(self, now: datetime) -> FieldChange:
        """The change this event makes, dated by its time; a clock ahead of ours cannot date it into our future."""
        return FieldChange(at=min(self.time, now), source=ChangeSource.ACCOUNT_UPDATED, cause=self.id)


IncomingEvent = PaymentFailedEvent | PaymentReceivedEvent | AccountUpdatedEvent
PaymentEvent = Annotated[IncomingEvent, Field(discriminator="type")]

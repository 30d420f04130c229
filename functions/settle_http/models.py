"""Request bodies of the settle-balance API: camelCase, unknown fields refused, amounts as decimal strings."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator
from pydantic.alias_generators import to_camel

from shared.domain.model import MAX_HOLD_REASON_LENGTH, EmailAddress, Identifier
from shared.domain.money import MINOR_UNIT_EXPONENTS, Currency, Money
from shared.domain.payment_events import DecimalAmount
from shared.domain.settle_balance import PaymentChoice

MAX_BODY_BYTES = 64 * 1024
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"


class RequestModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel)


class AccountRequest(RequestModel):
    # The route's account, named again in the body: a signature over the body then binds the call to that account.
    account_id: Identifier = Field(description="The route's `{accountId}`; any other value is 422 account-mismatch")


class PrincipalRequest(AccountRequest):
    principal_id: Identifier


class OverviewRequest(PrincipalRequest):
    pass


class QuoteRequest(PrincipalRequest):
    subscription_id: Identifier
    payment_method_id: Identifier | None = None


# The currencies we bill in, spelled out for the OpenAPI document (the validator is Currency's own).
BilledCurrency = Annotated[Currency, WithJsonSchema({"type": "string", "enum": sorted(MINOR_UNIT_EXPONENTS)})]


class MoneyAmount(RequestModel):
    amount: DecimalAmount
    currency: BilledCurrency

    @model_validator(mode="after")
    def _fits_currency(self) -> MoneyAmount:
        Money.parse(self.amount, self.currency)
        return self

    def to_money(self) -> Money:
        return Money.parse(self.amount, self.currency)


class PaymentMethodChoice(RequestModel):
    """`{"id": ...}` (a method on file), `{"token": ...}` (a new card) or `{"kind": "invoice"}`."""

    id: Identifier | None = None
    token: str | None = Field(default=None, min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_\-]+$")
    kind: Literal["invoice"] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PaymentMethodChoice:
        if sum(value is not None for value in (self.id, self.token, self.kind)) != 1:
            raise ValueError('give exactly one of "id", "token" or "kind": "invoice"')
        return self

    def to_choice(self) -> PaymentChoice:
        return PaymentChoice(payment_method_id=self.id, token=self.token, invoice=self.kind == "invoice")


class IdempotentRequest(PrincipalRequest):
    # The Idempotency-Key header, named again in the signed body: a captured call cannot start another payment.
    idempotency_key: str = Field(
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="The `Idempotency-Key` header's value; any other value is 422 idempotency-key-mismatch",
    )


class SettleRequest(IdempotentRequest):
    subscription_id: Identifier
    payment_method: PaymentMethodChoice
    expected_total: MoneyAmount
    quote_version: str | None = Field(default=None, min_length=1, max_length=64)


class NotificationEmailRequest(PrincipalRequest):
    notification_email: EmailAddress | None = None


UtcMoment = Annotated[AwareDatetime, AfterValidator(lambda moment: moment.astimezone(UTC))]


class HoldRequest(AccountRequest):
    """Support holds the account's collection (admin key): no reminder, warning, cancellation or deletion."""

    reason: str = Field(
        min_length=1,
        max_length=MAX_HOLD_REASON_LENGTH,
        description="Why; kept in the account, the overview and the audit log, never logged",
    )
    until: UtcMoment | None = Field(
        default=None, description="ISO 8601 date-time with offset, in the future: the hold ends by itself then"
    )
    set_by: Identifier = Field(description="The support operator's id, kept with the hold and in the audit log")


class ReleaseRequest(AccountRequest):
    released_by: Identifier = Field(description="The support operator's id, kept in the audit log")

"""The billing account and everything that belongs to it; all of it lives in the account's partition."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Self

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, WithJsonSchema

from shared.domain.errors import InvalidTransitionError
from shared.domain.lifecycle import (
    StateTransition,
    SubscriptionState,
    TransitionReason,
    check_transition,
)
from shared.domain.money import Currency, Money

# Usable as a Table Storage key: no / \ # ? or control characters, at most 128 characters.
IDENTIFIER = r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,127}"
IDENTIFIER_PATTERN = rf"^{IDENTIFIER}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]
Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")]
MAX_EMAIL_LENGTH = 254
# Validation context of rows read back from storage: they were checked when they entered, and an address stored
# before today's rules must not make its whole account unreadable (it stays fixable through the API).
STORED_ROW = "stored_row"
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bq]\?[^?\s]*\?=", re.IGNORECASE)
HISTORY_LIMIT = 50
# The dunning policy of an account that names none (shared/domain/dunning_policies.py).
DEFAULT_DUNNING_POLICY = "default"


def usable_email_address(value: str, info: ValidationInfo) -> str:
    """An address the mailer can use, in its normalized ASCII form; the reason names no part of the address."""
    if info.context and info.context.get(STORED_ROW):
        return value
    if _ENCODED_WORD.search(value):
        raise ValueError("not a usable email address: it holds an encoded word (RFC 2047)")
    try:
        checked = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        # email-validator quotes the offending characters or labels after ':' or in parentheses: drop them.
        reason = re.split(r"[:(]", str(error), maxsplit=1)[0].strip().rstrip(".")
        raise ValueError(f"not a usable email address: {reason[:1].lower()}{reason[1:]}") from None
    return checked.ascii_email or checked.normalized


EmailAddress = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_LENGTH),
    AfterValidator(usable_email_address),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_LENGTH}),
]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class AccountField(StrEnum):
    """The account fields only their owner may change: named as the events name them."""

    ADMIN_PRINCIPAL_ID = "adminPrincipalId"
    NOTIFICATION_EMAIL = "notificationEmail"
    DUNNING_POLICY = "dunningPolicy"


class ChangeSource(StrEnum):
    SNAPSHOT = "snapshot"  # the account snapshot of the event that created the account
    ACCOUNT_UPDATED = "account.updated"
    ADMIN = "admin"  # the admin, through the notification-email route


class FieldChange(Frozen):
    """When an account field was last set and by what: an event (`cause` is its id) or the admin (the principal)."""

    at: datetime
    source: ChangeSource
    cause: str = Field(max_length=128)

    def is_newer_than(self, stored: FieldChange | None) -> bool:
        """An older change never replaces a newer one; an account stored before changes were dated has none."""
        return stored is None or self.at >= stored.at


MAX_HOLD_REASON_LENGTH = 500


class CollectionHold(Frozen):
    """Collection paused for the whole account by support: no reminder, warning, cancellation or deletion.

    `reason` is support's free text: kept and shown, never logged (it may name a person).
    """

    reason: str = Field(min_length=1, max_length=MAX_HOLD_REASON_LENGTH)
    set_by: Identifier
    since: datetime
    until: datetime | None = None

    def ends_at(self, now: datetime) -> datetime:
        """When the hold stops counting: `until` once it has passed (whenever the release is carried out), else now."""
        return min(now, self.until) if self.until is not None else now

    def expired(self, now: datetime) -> bool:
        return self.until is not None and now >= self.until


class Account(Frozen):
    id: Identifier
    admin_principal_id: Identifier
    notification_email: EmailAddress
    locale: Locale
    currency: Currency
    admin_changed: FieldChange | None = None
    notification_email_changed: FieldChange | None = None
    hold: CollectionHold | None = None
    dunning_policy: Identifier = DEFAULT_DUNNING_POLICY
    dunning_policy_changed: FieldChange | None = None


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
    # The latest payment.failed for this method named its gateway token: that failure may be retried automatically.
    # A token already on file (a card added in the portal) is not enough: without one in the event, nothing is retried.
    auto_retry: bool = False

    def mark_failed(self, reason: DeclineReason, at: datetime) -> Self:
        return self.model_copy(update={"status": PaymentMethodStatus.FAILED, "failed_reason": reason, "failed_at": at})

    def mark_active(self) -> Self:
        return self.model_copy(
            update={"status": PaymentMethodStatus.ACTIVE, "failed_reason": None, "failed_at": None, "auto_retry": False}
        )

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
    # Time spent under collection holds since the current deadline's reference (past due, or disabled): every date
    # of the timeline is this much later (shared/domain/retention_policy.py).
    deadline_shift: timedelta = timedelta(0)

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
            update["deadline_shift"] = timedelta(0)  # disabled_at is the real moment: earlier holds are in it
        if target is SubscriptionState.ENABLED:
            update["past_due_since"] = None
            update["disabled_at"] = None
            update["deadline_shift"] = timedelta(0)
        return self.model_copy(update=update)

    def held_for(self, hold: CollectionHold, released_at: datetime) -> timedelta:
        """How long `hold` kept this subscription's pending deadline from running (none if it had none)."""
        if self.state is SubscriptionState.DISABLED:
            reference = self.disabled_at
        elif self.state in {SubscriptionState.PAST_DUE, SubscriptionState.WARNED}:
            reference = self.past_due_since
        else:
            return timedelta(0)
        if reference is None:
            return timedelta(0)
        return max(released_at - max(hold.since, reference), timedelta(0))

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

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict

from shared.domain.errors import CurrencyMismatchError, InvalidAmountError, UnsupportedCurrencyError

# ISO 4217 minor-unit exponents for the currencies we bill in.
MINOR_UNIT_EXPONENTS: dict[str, int] = {
    "AUD": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "INR": 2,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PLN": 2,
    "SEK": 2,
    "SGD": 2,
    "TND": 3,
    "TRY": 2,
    "TWD": 2,
    "USD": 2,
    "ZAR": 2,
}
DECIMAL_STRING_PATTERN = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,3})?$"
_DECIMAL_STRING = re.compile(DECIMAL_STRING_PATTERN)


def _known_currency(code: str) -> str:
    if code not in MINOR_UNIT_EXPONENTS:
        raise UnsupportedCurrencyError(f"unsupported currency {code!r}; expected an ISO 4217 code we bill in")
    return code


Currency = Annotated[str, AfterValidator(_known_currency)]


class Money(BaseModel):
    """An exact amount: integer minor units of an ISO 4217 currency."""

    model_config = ConfigDict(frozen=True)

    minor: int
    currency: Currency

    @classmethod
    def zero(cls, currency: str) -> Self:
        return cls(minor=0, currency=currency)

    @classmethod
    def parse(cls, amount: str, currency: str) -> Self:
        """Read a non-negative decimal string such as "49.95" in `currency`."""
        _known_currency(currency)
        if not isinstance(amount, str) or not _DECIMAL_STRING.fullmatch(amount):
            raise InvalidAmountError('amount must be a non-negative decimal string such as "49.95"')
        exponent = MINOR_UNIT_EXPONENTS[currency]
        _, _, fraction = amount.partition(".")
        if len(fraction) > exponent:
            raise InvalidAmountError(f"{currency} amounts have at most {exponent} decimal places")
        return cls(minor=int(Decimal(amount).scaleb(exponent)), currency=currency)

    @property
    def amount(self) -> str:
        """The decimal string for the wire: "49.95", "1200" for JPY."""
        exponent = MINOR_UNIT_EXPONENTS[self.currency]
        return f"{Decimal(self.minor).scaleb(-exponent):.{exponent}f}"

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(minor=self.minor + other.minor, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(minor=self.minor - other.minor, currency=self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatchError(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def total(amounts: list[Money] | tuple[Money, ...], currency: str) -> Money:
    result = Money.zero(currency)
    for money in amounts:
        result = result + money
    return result

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.domain.errors import CurrencyMismatchError, InvalidAmountError, UnsupportedCurrencyError
from shared.domain.money import MINOR_UNIT_EXPONENTS, Money, total


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [("49.95", "EUR", 4995), ("0", "EUR", 0), ("0.1", "USD", 10), ("1200", "JPY", 1200), ("1.005", "KWD", 1005)],
)
def test_decimal_strings_become_exact_minor_units(amount: str, currency: str, minor: int) -> None:
    assert Money.parse(amount, currency) == Money(minor=minor, currency=currency)


@pytest.mark.parametrize(
    ("money", "wire"),
    [
        (Money(minor=4995, currency="EUR"), "49.95"),
        (Money(minor=5, currency="EUR"), "0.05"),
        (Money(minor=1200, currency="JPY"), "1200"),
        (Money(minor=1005, currency="KWD"), "1.005"),
    ],
)
def test_amounts_go_out_as_decimal_strings_with_the_currency_decimals(money: Money, wire: str) -> None:
    assert money.amount == wire


@pytest.mark.parametrize(
    "amount", ["-1.00", "1e3", "1,00", " 1.00", "1.", ".5", "NaN", "Infinity", "01.00", "", "1.0000"]
)
def test_anything_but_a_plain_non_negative_decimal_string_is_refused(amount: str) -> None:
    with pytest.raises(InvalidAmountError):
        Money.parse(amount, "EUR")


def test_more_decimals_than_the_currency_has_are_refused() -> None:
    with pytest.raises(InvalidAmountError, match="EUR amounts have at most 2 decimal places"):
        Money.parse("49.955", "EUR")
    with pytest.raises(InvalidAmountError, match="JPY amounts have at most 0"):
        Money.parse("10.5", "JPY")


def test_unknown_currencies_are_refused() -> None:
    with pytest.raises(UnsupportedCurrencyError):
        Money.parse("1.00", "XYZ")
    with pytest.raises(ValueError, match="unsupported currency"):
        Money(minor=1, currency="eur")


def test_amounts_in_different_currencies_never_add_up() -> None:
    with pytest.raises(CurrencyMismatchError):
        _ = Money(minor=1, currency="EUR") + Money(minor=1, currency="USD")


def test_a_total_of_nothing_is_zero_in_the_account_currency() -> None:
    assert total([], "EUR") == Money.zero("EUR")
    assert total([Money(minor=1, currency="EUR"), Money(minor=2, currency="EUR")], "EUR").minor == 3


@given(minor=st.integers(min_value=0, max_value=10**14), currency=st.sampled_from(sorted(MINOR_UNIT_EXPONENTS)))
def test_wire_format_round_trips_exactly(minor: int, currency: str) -> None:
    money = Money(minor=minor, currency=currency)
    assert Money.parse(money.amount, currency) == money

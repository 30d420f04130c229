"""The one formatter of money and dates (shared/locales.py), held against CLDR as babel writes it, in three locales."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from babel.dates import format_date as babel_date
from babel.numbers import format_currency as babel_currency
from babel.numbers import get_currency_precision, get_currency_symbol

from shared.domain.money import MINOR_UNIT_EXPONENTS, Money
from shared.locales import best_locale, cldr_locale, format_date, format_moment, format_money, locale_fallbacks

LOCALES = ("en-US", "nl-NL", "de-DE")
NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("locale", "shown"), [("nl-NL", f"€{NBSP}1.234,50"), ("en-US", "€1,234.50"), ("de-DE", f"1.234,50{NBSP}€")]
)
def test_an_amount_reads_as_cldr_writes_it_in_the_locale(locale: str, shown: str) -> None:
    assert format_money("1234.50", "EUR", locale) == shown


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("currency", sorted(MINOR_UNIT_EXPONENTS))
def test_every_currency_we_bill_in_follows_babels_pattern_for_the_locale(locale: str, currency: str) -> None:
    money = Money(minor=123456789, currency=currency)
    ours = format_money(money.amount, currency, locale)
    theirs = babel_currency(Decimal(money.amount), currency, locale=locale.replace("-", "_"))
    assert get_currency_precision(currency) == MINOR_UNIT_EXPONENTS[currency]  # else the comparison needs our digits

    symbol = get_currency_symbol(currency, locale=locale.replace("-", "_"))
    if symbol[0] == symbol[-1] and not symbol.isalpha():  # €, $, ¥, £: CLDR inserts no currency spacing
        assert ours == theirs
    else:  # a symbol of letters next to a digit gets CLDR's no-break space (which babel leaves out)
        assert ours.replace(NBSP, "") == theirs.replace(NBSP, "")
        assert ours.count(NBSP) >= theirs.count(NBSP)


@pytest.mark.parametrize(
    ("locale", "currency", "shown"),
    [
        # As ICU writes them: CLDR's currency spacing between letters and digits.
        ("en-US", "CHF", f"CHF{NBSP}1,234.50"),
        ("en-US", "HUF", f"HUF{NBSP}1,234.50"),
        ("nl-NL", "USD", f"US${NBSP}1.234,50"),
        ("de-DE", "CHF", f"1.234,50{NBSP}CHF"),
    ],
)
def test_a_currency_written_with_letters_is_set_apart_from_the_number(locale: str, currency: str, shown: str) -> None:
    assert format_money("1234.50", currency, locale) == shown


def test_the_decimals_come_from_our_iso_4217_table_not_from_cldr(monkeypatch: pytest.MonkeyPatch) -> None:
    # HUF and IDR are billed with ISO 4217's two decimals, though CLDR pays them out in cash without any.
    assert format_money("1234.50", "HUF", "en-US") == f"HUF{NBSP}1,234.50"
    assert format_money("1234.50", "IDR", "nl-NL") == f"IDR{NBSP}1.234,50"
    monkeypatch.setitem(MINOR_UNIT_EXPONENTS, "HUF", 0)

    assert format_money("1234", "HUF", "en-US") == f"HUF{NBSP}1,234"
    assert babel_currency(Decimal("1234"), "HUF", locale="en_US") == "HUF1,234.00"


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "shown"),
    [
        ("en-US", "1200", "JPY", "¥1,200"),
        ("nl-NL", "1200", "JPY", f"JP¥{NBSP}1.200"),
        ("de-DE", "1200", "JPY", f"1.200{NBSP}¥"),
        ("en-US", "12.500", "KWD", f"KWD{NBSP}12.500"),
        ("nl-NL", "12.500", "KWD", f"KWD{NBSP}12,500"),
        ("de-DE", "12.500", "KWD", f"12,500{NBSP}KWD"),
    ],
)
def test_zero_and_three_decimal_currencies_keep_their_decimals(
    locale: str, amount: str, currency: str, shown: str
) -> None:
    assert format_money(amount, currency, locale) == shown


def test_a_negative_amount_keeps_its_sign() -> None:
    assert format_money("-62.45", "EUR", "en-US") == "-€62.45"


def test_text_that_is_not_an_amount_is_shown_as_it_is() -> None:
    assert format_money("", "EUR", "nl-NL") == "EUR"
    assert format_money("n/a", "EUR", "nl-NL") == "n/a EUR"


@pytest.mark.parametrize("locale", LOCALES)
def test_dates_are_cldrs_long_form(locale: str) -> None:
    day = date(2026, 11, 25)

    assert format_date("2026-11-25", locale) == babel_date(day, format="long", locale=locale.replace("-", "_"))
    assert format_date(day, locale) == format_date("2026-11-25T23:59:00Z", locale)


@pytest.mark.parametrize(
    ("locale", "shown"),
    [("en-US", "November 25, 2026"), ("nl-NL", "25 november 2026"), ("de-DE", "25. November 2026")],
)
def test_a_date_reads_as_in_each_locale(locale: str, shown: str) -> None:
    assert format_date("2026-11-25", locale) == shown


def test_a_moment_is_shown_in_utc() -> None:
    assert format_moment("2026-11-25T01:20:08+01:00", "nl-NL") == "25 november 2026, 00:20 UTC"
    assert format_moment(datetime(2026, 11, 25, 0, 20, tzinfo=UTC), "de-DE") == "25. November 2026, 00:20 UTC"
    assert format_moment("2026-11-25T13:05:00Z", "en-US") == "November 25, 2026, 1:05\u202fPM UTC"
    assert format_moment("2026-11-25", "en-US") == "November 25, 2026"
    assert (format_moment(None, "en-US"), format_moment("soon", "en-US")) == ("", "soon")


def test_a_region_cldr_knows_is_used_and_one_it_does_not_falls_back_to_its_language_or_english() -> None:
    assert format_money("1234.50", "EUR", "nl-BE") == babel_currency(Decimal("1234.50"), "EUR", locale="nl_BE")
    assert str(cldr_locale("nl-XX")) == "nl"
    assert str(cldr_locale("xx-YY")) == "en_US"
    assert str(cldr_locale(None)) == "en_US"


def test_the_locale_fallback_chain_is_exact_then_language_then_region_then_english() -> None:
    available = ["de-DE", "en-US", "nl-NL"]

    assert locale_fallbacks("nl-BE", available) == ["nl-BE", "nl", "nl-NL", "en-US"]
    assert best_locale("nl-BE", available) == "nl-NL"
    assert best_locale("de_AT", available) == "de-DE"
    assert best_locale("fr-FR", available) == "en-US"
    assert best_locale("not a locale!", available) == "en-US"

"""Locales: which of the available ones serves a reader, and money and dates written as CLDR says for a locale.

One formatter for the emails (shared/email) and the portal: babel's CLDR data gives the symbols, separators,
patterns and month names of each locale; the number of decimals of an amount comes from the ISO 4217 table the
money is kept in (shared/domain/money.py), never from CLDR, so an amount reads as it is billed. nl-NL writes
`€ 1.234,50`, en-US `€1,234.50`, de-DE `1.234,50 €` (the spaces are CLDR's no-break spaces, U+00A0).

Babel applies CLDR's number patterns but not CLDR's currency spacing (a no-break space between a currency written
with letters and a digit next to it), so that one rule of CLDR's root locale is applied here: en-US `CHF 0.00`,
as ICU writes it, not `CHF0.00`.
"""

from __future__ import annotations

import copy
import functools
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as cldr_date
from babel.dates import format_time as cldr_time
from babel.numbers import format_currency, get_currency_symbol

from shared.domain.money import MINOR_UNIT_EXPONENTS

DEFAULT_LOCALE = "en-US"
# CLDR root, numbers/currencyFormats/currencySpacing: between a currency symbol that does not end (or begin) with a
# symbol or space character and an adjacent digit, insert a no-break space.
CURRENCY_SPACE = "\u00a0"
_LOCALE_NAME = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*")


def locale_fallbacks(locale: str | None, available: Iterable[str]) -> list[str]:
    """Who serves `locale`, best first: itself, its language, another region of its language, then en-US."""
    normalized = (locale or "").replace("_", "-")
    candidates = []
    if _LOCALE_NAME.fullmatch(normalized):
        language = normalized.split("-", 1)[0]
        candidates = [normalized, language, *(name for name in sorted(available) if name.startswith(f"{language}-"))]
    candidates.append(DEFAULT_LOCALE)
    return list(dict.fromkeys(candidates))


def best_locale(locale: str | None, available: Iterable[str]) -> str:
    """The first of `available` in the fallback chain of `locale` (en-US when none of them is)."""
    offered = set(available)
    return next((candidate for candidate in locale_fallbacks(locale, offered) if candidate in offered), DEFAULT_LOCALE)


def same_language(locale: str | None, other: str) -> bool:
    return (locale or "").replace("_", "-").split("-")[0].lower() == other.split("-", maxsplit=1)[0].lower()


@functools.lru_cache(maxsize=64)
def cldr_locale(locale: str | None) -> Locale:
    """CLDR's data for `locale` (`nl-NL`, `nl_BE`, `de`); its language alone if CLDR lacks the region; else en-US."""
    normalized = (locale or "").replace("-", "_")
    for candidate in (normalized, normalized.split("_")[0], DEFAULT_LOCALE.replace("-", "_")):
        try:
            return Locale.parse(candidate)
        except (UnknownLocaleError, ValueError, TypeError):
            continue
    raise AssertionError("en_US is always in CLDR")


def format_money(amount: str | Decimal, currency: str, locale: str | None) -> str:
    """An amount (a decimal string from the API, "1234.5") in `currency` as the locale writes it, with the
    currency's ISO 4217 decimals; text that is not a number comes back as it is, with the currency code."""
    try:
        value = Decimal(amount)
    except (InvalidOperation, ValueError):
        return f"{amount} {currency}".strip()
    cldr = cldr_locale(locale)
    digits = MINOR_UNIT_EXPONENTS.get(currency)
    if digits is None:  # not a currency we bill in: CLDR's own decimals are all there is
        text = format_currency(value, currency, locale=cldr)
    else:
        pattern = copy.copy(cldr.currency_formats["standard"])
        pattern.frac_prec = (digits, digits)
        text = pattern.apply(value, cldr, currency=currency, currency_digits=False)
    return _currency_spaced(text, get_currency_symbol(currency, locale=cldr))


def _currency_spaced(text: str, symbol: str) -> str:
    start = text.find(symbol)
    if not symbol or start < 0:
        return text
    end = start + len(symbol)
    if end < len(text) and text[end].isdigit() and _is_letterlike(symbol[-1]):
        return f"{text[:end]}{CURRENCY_SPACE}{text[end:]}"
    if start > 0 and text[start - 1].isdigit() and _is_letterlike(symbol[0]):
        return f"{text[:start]}{CURRENCY_SPACE}{text[start:]}"
    return text


def _is_letterlike(character: str) -> bool:
    """Neither a symbol (S*) nor a separator (Z*): CLDR's `[[:^S:]&[:^Z:]]`."""
    return unicodedata.category(character)[0] not in {"S", "Z"}


def format_date(value: date | str | None, locale: str | None) -> str:
    """A day written out, CLDR's long form: `25 november 2026`, `November 25, 2026`, `25. November 2026`.
    An ISO 8601 date or date-time is read (its day as written); other text comes back as it is."""
    day = _day(value)
    if day is None:
        return value if isinstance(value, str) else ""
    return cldr_date(day, format="long", locale=cldr_locale(locale))


def format_moment(value: datetime | str | None, locale: str | None) -> str:
    """A moment in UTC: its day written out and CLDR's short time, `November 25, 2026, 12:20 AM UTC`; a bare
    ISO date as `format_date` writes it; other text as it is."""
    if isinstance(value, str) and len(value) <= len("2026-11-25"):
        return format_date(value, locale)
    at = _moment(value)
    if at is None:
        return value if isinstance(value, str) else ""
    cldr = cldr_locale(locale)
    utc = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    time_text = cldr_time(utc, format="short", tzinfo=UTC, locale=cldr)
    return f"{cldr_date(utc.date(), format='long', locale=cldr)}, {time_text} UTC"


def _day(value: date | str | None) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _moment(value: datetime | str | None) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None

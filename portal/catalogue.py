"""The portal's words, one folder per locale (portal/locales/<locale>/messages.json), and the account's locale for
money and dates (shared/locales.py, CLDR). A new locale is a new folder; the account's locale picks the folder by
the same fallback as the emails: the locale itself, its language, another region of its language, en-US.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path

from shared.locales import DEFAULT_LOCALE, best_locale, format_date, format_moment, format_money, same_language

LOCALES_DIRECTORY = Path(__file__).parent / "locales"


def load_texts(directory: Path) -> dict[str, dict[str, str]]:
    return {
        folder.name: json.loads((folder / "messages.json").read_text(encoding="utf-8"))
        for folder in sorted(directory.iterdir())
        if (folder / "messages.json").is_file()
    }


TEXTS: dict[str, dict[str, str]] = load_texts(LOCALES_DIRECTORY)
LOCALES = tuple(TEXTS)
# By language, as the pages name it (<html lang>): one folder per language.
LANGUAGES = tuple(locale.split("-")[0] for locale in LOCALES)
MESSAGES: dict[str, dict[str, str]] = {
    key: {locale.split("-")[0]: texts[key] for locale, texts in TEXTS.items() if key in texts}
    for key in dict.fromkeys(key for texts in TEXTS.values() for key in texts)
}


def catalogue_of(locale: str | None) -> str:
    """The folder whose words serve `locale`."""
    return best_locale(locale, LOCALES)


def language_of(locale: str | None) -> str:
    """The language of the words shown for `locale`: `nl-NL`, `nl-BE`, `nl` -> nl; a locale without words -> en."""
    return catalogue_of(locale).split("-")[0]


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@dataclass(frozen=True)
class Translator:
    """Words from the locale's folder; money and dates in the reader's own locale (nl-BE: Dutch words, Belgian
    notation; a locale without a folder of its own: English words, English notation)."""

    language: str
    locale: str = DEFAULT_LOCALE

    def __call__(self, key: str, **values: object) -> str:
        """The message in this language; an unknown key shows as itself so a gap is visible, not fatal."""
        entry = MESSAGES.get(key)
        if entry is None:
            return key
        return entry.get(self.language, entry["en"]).format(**values)

    def has(self, key: str) -> bool:
        return key in MESSAGES

    def money(self, amount: str, currency: str) -> str:
        """A decimal string from the API as CLDR writes it: en-US `€62.45`, nl-NL `€ 62,45`, de-DE `62,45 €`."""
        return format_money(amount, currency, self.locale)

    def date(self, value: str | None) -> str:
        """An ISO 8601 date (or date-time) written out: `December 7, 2025` / `7 december 2025`; other text as is."""
        return format_date(value, self.locale)

    def moment(self, value: str | None) -> str:
        """An ISO 8601 date-time in UTC: `November 25, 2026, 12:20 AM UTC`; a bare date as `date` does."""
        return format_moment(value, self.locale)

    def label(self, prefix: str, value: str) -> str:
        """The catalogue's words for a code (`template.payment_failed`), or the code itself when there are none."""
        return self(f"{prefix}.{value}") if self.has(f"{prefix}.{value}") else value


def translator(locale: str | None) -> Translator:
    folder = catalogue_of(locale)
    notation = locale.replace("_", "-") if locale and same_language(locale, folder) else folder
    return Translator(folder.split("-")[0], notation)

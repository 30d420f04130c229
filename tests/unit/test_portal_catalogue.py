from __future__ import annotations

from pathlib import Path

import pytest

from portal.catalogue import LANGUAGES, LOCALES, MESSAGES, language_of, load_texts, placeholders, translator


def test_every_message_exists_in_english_and_dutch() -> None:
    missing = [key for key, entry in MESSAGES.items() if set(entry) != set(LANGUAGES) or not all(entry.values())]

    assert missing == []


def test_both_languages_of_a_message_use_the_same_placeholders() -> None:
    differing = [key for key, entry in MESSAGES.items() if placeholders(entry["en"]) != placeholders(entry["nl"])]

    assert differing == []


@pytest.mark.parametrize(
    ("locale", "language"),
    [("nl-NL", "nl"), ("nl-BE", "nl"), ("nl", "nl"), ("en-US", "en"), ("de-DE", "de"), ("", "en"), (None, "en")],
)
def test_the_account_locale_picks_its_language_or_falls_back_to_english(locale: str | None, language: str) -> None:
    assert language_of(locale) == language


def test_messages_are_filled_in_the_chosen_language() -> None:
    assert translator("nl-NL")("settle.pay", total="€ 62,45") == "Betaal € 62,45"
    assert translator("en-US")("settle.pay", total="$310.00") == "Pay $310.00"


def test_an_unknown_key_shows_itself_instead_of_failing() -> None:
    t = translator("en-US")

    assert t("no.such.key") == "no.such.key"
    assert not t.has("no.such.key")


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "shown"),
    [
        ("en-US", "310.00", "USD", "$310.00"),
        ("en-US", "1234567.50", "EUR", "€1,234,567.50"),
        ("nl-NL", "62.45", "EUR", "€\u00a062,45"),
        ("nl-NL", "1234.00", "EUR", "€\u00a01.234,00"),
        ("en-US", "1200", "JPY", "¥1,200"),
        ("nl-NL", "12.500", "KWD", "KWD\u00a012,500"),
        ("en-US", "0.00", "CHF", "CHF\u00a00.00"),
    ],
)
def test_amounts_are_written_in_the_readers_notation(locale: str, amount: str, currency: str, shown: str) -> None:
    assert translator(locale).money(amount, currency) == shown


def test_dates_are_written_out_with_month_names() -> None:
    assert translator("nl-NL").date("2025-12-07") == "7 december 2025"
    assert translator("en-US").date("2025-12-07T10:00:00Z") == "December 7, 2025"
    assert translator("en-US").date("not a date") == "not a date"
    assert translator("en-US").date(None) == ""


def test_the_banner_wording_of_the_issue_is_there() -> None:
    en = translator("en-US")

    assert "will be disabled" in en("alert.payment_failed", method="Visa", subscriptions="Prod", date="1 May 2026")
    assert "disabled because payment wasn't received" in en("alert.disabled", subscriptions="Prod")


def test_moments_are_shown_in_utc_with_the_date_written_out() -> None:
    assert translator("en-US").moment("2026-11-25T00:20:08.123456Z") == "November 25, 2026, 12:20\u202fAM UTC"
    assert translator("nl-NL").moment("2026-11-25T01:20:08+01:00") == "25 november 2026, 00:20 UTC"
    assert translator("nl-NL").moment("2026-11-25") == "25 november 2026"
    assert translator("en-US").moment(None) == ""


def test_codes_without_words_show_as_themselves() -> None:
    t = translator("nl-NL")

    assert t.label("template", "payment_failed") == "Betaling mislukt"
    assert t.label("template", "brand_new_template") == "brand_new_template"
    assert t.label("reason", "insufficient_funds") == "onvoldoende saldo"


def test_every_language_uses_the_same_placeholders_as_english() -> None:
    differing = [
        (key, language)
        for key, entry in MESSAGES.items()
        for language, text in entry.items()
        if placeholders(text) != placeholders(entry["en"])
    ]

    assert differing == []


def test_a_locale_is_a_folder_of_texts(tmp_path: Path) -> None:
    (tmp_path / "fr-FR").mkdir()
    (tmp_path / "fr-FR" / "messages.json").write_text('{"app.name": "Portail de facturation"}', encoding="utf-8")
    (tmp_path / "notes").mkdir()

    assert load_texts(tmp_path) == {"fr-FR": {"app.name": "Portail de facturation"}}
    assert "de-DE" in LOCALES


def test_german_words_with_the_readers_own_notation() -> None:
    germany, austria = translator("de-DE"), translator("de-AT")

    assert germany("settle.pay", total=germany.money("62.45", "EUR")) == "62,45\u00a0€ bezahlen"
    assert austria("settle.pay", total=austria.money("62.45", "EUR")) == "€\u00a062,45 bezahlen"
    assert germany.date("2025-12-07") == "7. Dezember 2025"
    assert translator("fr-FR").money("62.45", "EUR") == "€62.45"

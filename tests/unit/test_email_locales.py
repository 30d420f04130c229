"""A locale is a folder of templates: de-DE proves it; money and dates in the emails come from CLDR."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.domain.model import DeclineReason
from shared.domain.retention_plan import Template
from shared.email import EmailRenderer
from shared.email.rendering import DEFAULT_TEMPLATE_DIRECTORY
from tests.unit.test_retention_emails import NAME, emails_of_a_whole_timeline

NBSP = "\u00a0"


def template_files(locale: str) -> set[str]:
    return {path.name for path in (DEFAULT_TEMPLATE_DIRECTORY / locale).iterdir()}


@pytest.mark.parametrize("locale", sorted(p.name for p in DEFAULT_TEMPLATE_DIRECTORY.iterdir() if p.is_dir()))
def test_every_locale_folder_has_every_template_english_has(locale: str) -> None:
    assert template_files(locale) == template_files("en-US")


def test_a_locale_is_found_by_its_folder_alone(tmp_path: Path) -> None:
    for locale in ("en-US", "fr-FR"):
        folder = tmp_path / locale
        folder.mkdir()
        (folder / "hello.subject.j2").write_text("{{ greeting }}\n")
        (folder / "hello.txt.j2").write_text("x\n")
        (folder / "hello.html.j2").write_text("x\n")

    rendered = EmailRenderer(tmp_path).render("hello", "fr-FR", {"greeting": "Bonjour"})

    assert rendered.subject == "Bonjour"


def test_the_german_smoke_email_is_german() -> None:
    rendered = EmailRenderer().render("_smoke", "de-DE", {"name": "Ada", "note": "alles gut"})

    assert rendered.subject == "Rauchtest für Ada"
    assert rendered.plain_text.startswith("Hallo Ada,")
    assert '<html lang="de-DE">' in rendered.html


def test_every_german_retention_email_is_german_with_german_dates_and_amounts() -> None:
    emails = emails_of_a_whole_timeline("de-DE", DeclineReason.INSUFFICIENT_FUNDS)

    assert set(emails) == {
        Template.REMINDER,
        Template.FINAL_NOTICE,
        Template.DISABLED,
        Template.DELETION_WARNING,
        Template.DELETED,
    }
    assert all('lang="de-DE"' in email.html and "{{" not in email.plain_text for email in emails.values())
    assert emails[Template.REMINDER].subject == f"Zahlungserinnerung: {NAME} wird am 3. Februar 2027 gekündigt"
    assert f"123.456,78{NBSP}€" in emails[Template.REMINDER].plain_text
    assert "am 5. Mai 2027 gelöscht" in emails[Template.DISABLED].subject
    assert "(in 1 Tag)" in emails[Template.DELETION_WARNING].plain_text


def test_a_hard_decline_asks_in_german_for_another_payment_method() -> None:
    hard = emails_of_a_whole_timeline("de-DE", DeclineReason.STOLEN_CARD)

    assert "aktualisieren sie ihre zahlungsmethode" in hard[Template.REMINDER].plain_text.lower()


@pytest.mark.parametrize(
    ("locale", "amount", "date"),
    [
        ("en-US", "€123,456.78", "February 3, 2027"),
        ("nl-NL", f"€{NBSP}123.456,78", "3 februari 2027"),
        ("de-DE", f"123.456,78{NBSP}€", "3. Februar 2027"),
        # Words of the language's folder, notation of the account's own locale: Austria puts the euro first.
        ("de-AT", f"€{NBSP}123.456,78", "3. Februar 2027"),
        # No folder for the language: English words, and English notation with them, never a mix.
        ("fr-FR", "€123,456.78", "February 3, 2027"),
    ],
)
def test_money_and_dates_in_an_email_are_written_as_cldr_writes_them_in_the_account_locale(
    locale: str, amount: str, date: str
) -> None:
    reminder = emails_of_a_whole_timeline(locale, DeclineReason.INSUFFICIENT_FUNDS)[Template.REMINDER]

    assert amount in reminder.plain_text
    assert amount in reminder.html
    assert date in reminder.subject

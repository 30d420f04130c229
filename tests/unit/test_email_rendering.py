from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from shared.email import EmailRenderer, MissingTemplateValueError, UnknownEmailTemplateError

if TYPE_CHECKING:
    from pathlib import Path

SMOKE_CONTEXT = {"name": "Ada", "note": "all good"}


@pytest.fixture
def renderer() -> EmailRenderer:
    return EmailRenderer()


def write_template_set(root: Path, locale: str, template: str, greeting: str) -> None:
    directory = root / locale
    directory.mkdir(parents=True)
    (directory / f"{template}.subject.j2").write_text(f"{greeting} subject\n")
    (directory / f"{template}.txt.j2").write_text(f"{greeting} {{{{ name }}}}\n")
    (directory / f"{template}.html.j2").write_text(f"<p>{greeting} {{{{ name }}}}</p>\n")


def test_the_english_template_renders_subject_text_and_html(renderer: EmailRenderer) -> None:
    rendered = renderer.render("_smoke", "en-US", SMOKE_CONTEXT)

    assert rendered.subject == "Smoke test for Ada"
    assert rendered.plain_text == "Hello Ada,\n\nThis is a smoke test: all good\n"
    assert "Hello Ada," in rendered.html
    assert '<html lang="en-US">' in rendered.html


def test_the_dutch_template_renders_in_dutch(renderer: EmailRenderer) -> None:
    rendered = renderer.render("_smoke", "nl-NL", SMOKE_CONTEXT)

    assert rendered.subject == "Rooktest voor Ada"
    assert rendered.plain_text.startswith("Hallo Ada,")
    assert "Dit is een rooktest: all good" in rendered.html
    assert '<html lang="nl-NL">' in rendered.html


def test_an_unknown_region_falls_back_to_its_language(tmp_path: Path) -> None:
    write_template_set(tmp_path, "nl", "greeting", "Hallo")
    write_template_set(tmp_path, "en-US", "greeting", "Hello")

    rendered = EmailRenderer(tmp_path).render("greeting", "nl-BE", {"name": "Ada"})

    assert rendered.subject == "Hallo subject"
    assert rendered.plain_text == "Hallo Ada\n"


def test_an_unknown_region_falls_back_to_another_region_of_the_same_language(renderer: EmailRenderer) -> None:
    rendered = renderer.render("_smoke", "nl-BE", SMOKE_CONTEXT)

    assert rendered.subject == "Rooktest voor Ada"


def test_a_language_without_templates_falls_back_to_english(renderer: EmailRenderer) -> None:
    rendered = renderer.render("_smoke", "fr-FR", SMOKE_CONTEXT)

    assert rendered.subject == "Smoke test for Ada"


def test_an_underscore_locale_is_read_like_a_hyphenated_one(renderer: EmailRenderer) -> None:
    assert renderer.render("_smoke", "nl_NL", SMOKE_CONTEXT).subject == "Rooktest voor Ada"


def test_html_escapes_markup_from_the_context_but_text_keeps_it(renderer: EmailRenderer) -> None:
    rendered = renderer.render("_smoke", "en-US", {"name": "<script>alert(1)</script>", "note": "x"})

    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered.html
    assert "Hello <script>alert(1)</script>," in rendered.plain_text
    assert rendered.subject == "Smoke test for <script>alert(1)</script>"


def test_a_missing_context_value_raises_a_named_error(renderer: EmailRenderer) -> None:
    with pytest.raises(MissingTemplateValueError, match="note"):
        renderer.render("_smoke", "en-US", {"name": "Ada"})


def test_an_unknown_template_raises_a_named_error(renderer: EmailRenderer) -> None:
    with pytest.raises(UnknownEmailTemplateError, match="no_such_template"):
        renderer.render("no_such_template", "en-US", SMOKE_CONTEXT)


def test_a_template_name_that_walks_out_of_the_folder_is_unknown(renderer: EmailRenderer) -> None:
    with pytest.raises(UnknownEmailTemplateError):
        renderer.render("../en-US/_smoke", "en-US", SMOKE_CONTEXT)


def test_a_subject_is_always_one_line(tmp_path: Path) -> None:
    write_template_set(tmp_path, "en-US", "multi", "Hello")
    (tmp_path / "en-US" / "multi.subject.j2").write_text("Hello\n{{ name }}\n\n")

    rendered = EmailRenderer(tmp_path).render("multi", "en-US", {"name": "Ada"})

    assert rendered.subject == "Hello Ada"

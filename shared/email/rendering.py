from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    UndefinedError,
    select_autoescape,
)

from shared.domain.email import EmailRenderingError, RenderedEmail
from shared.locales import format_date, format_money, locale_fallbacks, same_language

if TYPE_CHECKING:
    from collections.abc import Mapping

    from jinja2 import Template

DEFAULT_TEMPLATE_DIRECTORY = Path(__file__).parent / "templates"
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")
_SUBJECT_SPACE = re.compile(r"[^\S\u00a0\u202f]+")


class UnknownEmailTemplateError(EmailRenderingError):
    """No locale in the fallback chain has the requested template."""


class MissingTemplateValueError(EmailRenderingError):
    """The template used a value that the context does not provide."""


class EmailRenderer:
    """Renders `<locale>/<template>.{subject,txt,html}.j2`; locale fallback: exact, language, same language, en-US.

    A locale is a folder of templates. Money and dates are written by shared/locales.py (CLDR) in the account's
    locale when the templates are in its language (nl-BE reads nl-NL's words with Belgian formatting), else in
    the templates' locale, so an email never mixes one language's words with another's notation. The
    `_format.j2` macros of each folder call `format_money` and `format_date` with `formatting_locale`.
    """

    def __init__(self, template_dir: Path | None = None) -> None:
        directory = template_dir or DEFAULT_TEMPLATE_DIRECTORY
        self._locales = sorted(entry.name for entry in directory.iterdir() if entry.is_dir())
        self._environment = Environment(
            loader=FileSystemLoader(directory),
            autoescape=select_autoescape(enabled_extensions=("html", "htm", "html.j2"), default=False),
            undefined=StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._environment.globals.update(format_money=format_money, format_date=format_date)

    def render(self, template: str, locale: str, context: Mapping[str, object]) -> RenderedEmail:
        """Render the subject, plain text and HTML of one template in the best available locale."""
        resolved_locale = self._resolve_locale(template, locale)
        formatting_locale = locale if same_language(locale, resolved_locale) else resolved_locale
        values = {"template_locale": resolved_locale, "formatting_locale": formatting_locale, **context}
        try:
            subject = self._part(resolved_locale, template, "subject").render(values)
            plain_text = self._part(resolved_locale, template, "txt").render(values)
            html = self._part(resolved_locale, template, "html").render(values)
        except UndefinedError as error:
            raise MissingTemplateValueError(f"{template} ({resolved_locale}): {error.message}") from error
        except TemplateNotFound as error:
            raise UnknownEmailTemplateError(f"{template} ({resolved_locale}): missing {error.name}") from error
        # A subject is one header line; a stray newline from the template would break or inject headers. CLDR's
        # no-break spaces (in "€ 62,45") stay: they are what keeps an amount together.
        return RenderedEmail(subject=_SUBJECT_SPACE.sub(" ", subject).strip(), plain_text=plain_text, html=html)

    def _resolve_locale(self, template: str, locale: str) -> str:
        if not _TEMPLATE_NAME.fullmatch(template):
            raise UnknownEmailTemplateError(f"invalid template name {template!r}")
        for candidate in locale_fallbacks(locale, self._locales):
            try:
                self._part(candidate, template, "subject")
            except TemplateNotFound:
                continue
            return candidate
        raise UnknownEmailTemplateError(f"no template {template!r} for locale {locale!r} or its fallbacks")

    def _part(self, locale: str, template: str, part: str) -> Template:
        return self._environment.get_template(f"{locale}/{template}.{part}.j2")

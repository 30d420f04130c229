"""The local email outbox: `.eml` files written by the app when ACS is not configured, listed and read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

MAX_EMAIL_BYTES = 5_000_000
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,250}\.eml$")


@dataclass(frozen=True)
class OutboxEntry:
    name: str
    subject: str
    to: str
    sent_at: datetime | None


@dataclass(frozen=True)
class OutboxEmail:
    entry: OutboxEntry
    sender: str
    text: str
    html: str | None


class OutboxEmailNotFoundError(LookupError):
    pass


def is_email_name(name: str) -> bool:
    """A plain `.eml` file name of the outbox: no folders, no hidden or temporary files."""
    return bool(_NAME.fullmatch(name)) and ".." not in name


def list_outbox(directory: Path) -> list[OutboxEntry]:
    """Every email in the folder, newest first (by the Date header, then by name)."""
    if not directory.is_dir():
        return []
    entries = [
        _entry(path.name, _headers(path)) for path in directory.iterdir() if is_email_name(path.name) and path.is_file()
    ]
    return sorted(entries, key=lambda e: (e.sent_at.timestamp() if e.sent_at else 0.0, e.name), reverse=True)


def read_email(directory: Path, name: str) -> OutboxEmail:
    """One email by file name, with its text and HTML parts; OutboxEmailNotFoundError for anything else."""
    if not is_email_name(name):
        raise OutboxEmailNotFoundError(name)
    path = directory / name
    if not path.is_file() or path.resolve().parent != directory.resolve():
        raise OutboxEmailNotFoundError(name)
    message = _parse(path.read_bytes()[:MAX_EMAIL_BYTES])
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    return OutboxEmail(
        entry=_entry(name, message),
        sender=str(message.get("From", "")),
        text=text_part.get_content() if isinstance(text_part, EmailMessage) else "",
        html=html_part.get_content() if isinstance(html_part, EmailMessage) else None,
    )


def _parse(content: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(content)
    assert isinstance(message, EmailMessage)
    return message


def _headers(path: Path) -> EmailMessage:
    with path.open("rb") as handle:
        message = BytesParser(policy=policy.default).parse(handle, headersonly=True)
    assert isinstance(message, EmailMessage)
    return message


def _entry(name: str, message: EmailMessage) -> OutboxEntry:
    return OutboxEntry(
        name=name,
        subject=str(message.get("Subject", "")),
        to=str(message.get("To", "")),
        sent_at=_date(message.get("Date")),
    )


def _date(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(str(value))
    except (TypeError, ValueError):
        return None

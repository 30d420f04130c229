from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
import unicodedata
from datetime import UTC, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import format_datetime
from typing import TYPE_CHECKING

from shared.domain.email import OutgoingEmail, SendOutcome

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

logger = logging.getLogger(__name__)

_INDEX_DIRECTORY = ".by-operation"
_SHORT_ID_LENGTH = 16
_MESSAGE_ID_DOMAIN = "outbox.pastdue.invalid"
_UNSAFE_ADDRESS_CHARACTERS = re.compile(r"[^A-Za-z0-9@._+-]+")
_NON_SLUG_CHARACTERS = re.compile(r"[^a-z0-9]+")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OutboxEmailSender:
    """Writes each email as an .eml file in a local folder: the stand-in for ACS when it is not configured."""

    def __init__(self, directory: Path, sender_address: str, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._directory = directory
        self._sender_address = sender_address
        self._clock = clock

    def send(self, email: OutgoingEmail) -> SendOutcome:
        """Write the email once per operation id; a repeat returns the first message id."""
        short_id = _short_operation_id(email.operation_id)
        message_id = f"{hashlib.sha256(email.operation_id.encode()).hexdigest()[:32]}@{_MESSAGE_ID_DOMAIN}"
        index_entry = self._directory / _INDEX_DIRECTORY / f"{short_id}.eml"
        if index_entry.exists():
            logger.info("Outbox email %s was already written", short_id)
            return SendOutcome.sent(message_id)
        sent_at = self._clock()
        try:
            content = self._mime_bytes(email, message_id, sent_at)
        except (MessageError, ValueError) as error:
            return SendOutcome.failed(f"unusable email header: {type(error).__name__}")
        file_name = _readable_file_name(sent_at, email, short_id)
        try:
            written = self._write_once(content, index_entry, self._directory / file_name)
        except OSError as error:
            return SendOutcome.retry(f"outbox write failed: {type(error).__name__}")
        logger.info(
            "Outbox email %s %s in %s", short_id, "written" if written else "was already written", self._directory
        )
        return SendOutcome.sent(message_id)

    def _mime_bytes(self, email: OutgoingEmail, message_id: str, sent_at: datetime) -> bytes:
        message = EmailMessage()
        message["From"] = self._sender_address
        message["To"] = Address(display_name=email.to_name or "", addr_spec=email.to_address)
        message["Subject"] = email.subject
        message["Date"] = format_datetime(sent_at.astimezone(UTC))
        message["Message-ID"] = f"<{message_id}>"
        message["X-Pastdue-Operation-Id"] = email.operation_id
        if email.reply_to:
            message["Reply-To"] = email.reply_to
        message.set_content(email.plain_text)
        message.add_alternative(email.html, subtype="html")
        return message.as_bytes(policy=default_policy)

    def _write_once(self, content: bytes, index_entry: Path, destination: Path) -> bool:
        index_entry.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary_name = tempfile.mkstemp(dir=self._directory, prefix=".writing-", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as temporary_file:
                temporary_file.write(content)
                temporary_file.flush()
                os.fsync(temporary_file.fileno())
            # The hard link is the atomic claim: concurrent duplicates of one operation cannot both win.
            try:
                os.link(temporary_name, index_entry)
            except FileExistsError:
                return False
            os.replace(temporary_name, destination)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary_name)


def _short_operation_id(operation_id: str) -> str:
    return hashlib.sha256(operation_id.encode()).hexdigest()[:_SHORT_ID_LENGTH]


def _readable_file_name(sent_at: datetime, email: OutgoingEmail, short_id: str) -> str:
    timestamp = sent_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    recipient = _UNSAFE_ADDRESS_CHARACTERS.sub("-", email.to_address).strip(".-")[:64] or "recipient"
    subject = _slug(email.subject)
    return f"{timestamp}__{recipient}__{subject}__{short_id}.eml"


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _NON_SLUG_CHARACTERS.sub("-", ascii_text.lower()).strip("-")[:48].rstrip("-") or "email"

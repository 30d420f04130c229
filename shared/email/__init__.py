"""Email delivery: the sender protocol, the ACS and local outbox adapters, and the template renderer."""

from __future__ import annotations

from shared.email.acs import AcsEmailSender
from shared.email.model import EmailSender, OutgoingEmail, SendOutcome, SendStatus
from shared.email.outbox import OutboxEmailSender
from shared.email.rendering import (
    EmailRenderer,
    EmailRenderingError,
    MissingTemplateValueError,
    RenderedEmail,
    UnknownEmailTemplateError,
)

__all__ = [
    "AcsEmailSender",
    "EmailRenderer",
    "EmailRenderingError",
    "EmailSender",
    "MissingTemplateValueError",
    "OutboxEmailSender",
    "OutgoingEmail",
    "RenderedEmail",
    "SendOutcome",
    "SendStatus",
    "UnknownEmailTemplateError",
]

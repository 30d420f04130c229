"""Email adapters: ACS Email and the local .eml outbox (both implement the EmailSender port), and the renderer."""

from __future__ import annotations

from shared.email.acs import AcsEmailSender
from shared.email.outbox import OutboxEmailSender
from shared.email.rendering import EmailRenderer, MissingTemplateValueError, UnknownEmailTemplateError

__all__ = [
    "AcsEmailSender",
    "EmailRenderer",
    "MissingTemplateValueError",
    "OutboxEmailSender",
    "UnknownEmailTemplateError",
]

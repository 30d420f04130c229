"""Timer trigger that moves unpaid subscriptions through reminders, cancellation and deletion."""

from __future__ import annotations

from functions.retention_timer.handler import bp

__all__ = ["bp"]

"""Timer trigger that starts a retention pass: it hands the due work out on the work queue (retention_worker)."""

from __future__ import annotations

from functions.retention_timer.handler import bp

__all__ = ["bp"]

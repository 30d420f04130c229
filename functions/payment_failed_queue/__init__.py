"""Queue trigger for events from the billing engine: payment.failed and payment.received."""

from __future__ import annotations

from functions.payment_failed_queue.handler import bp

__all__ = ["bp"]

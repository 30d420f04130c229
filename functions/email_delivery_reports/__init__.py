"""Event Grid trigger for ACS email delivery reports (Microsoft.Communication.EmailDeliveryReportReceived)."""

from __future__ import annotations

from functions.email_delivery_reports.handler import bp

__all__ = ["bp"]

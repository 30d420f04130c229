"""HTTP API for the portal's settle-balance flow."""

from __future__ import annotations

from functions.settle_http.routes import bp

__all__ = ["bp"]

"""Deterministic ids of the retention timer's effects (emails, alerts, lifecycle events), derived from their cause."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

ID_PREFIX = "ret"
_STAMP = "%Y%m%dT%H%M%SZ"
_MAX_ID_LENGTH = 128


def effect_id(kind: str, reference: datetime | None, subscription_id: str, offset_days: int | None = None) -> str:
    """The deterministic id of one effect: `ret.<kind>[.<offset>].<reference, UTC>.<subscription>`."""
    parts = [ID_PREFIX, kind]
    if offset_days is not None:
        parts.append(str(offset_days))
    parts.append(reference.astimezone(UTC).strftime(_STAMP) if reference else "none")
    key = ".".join([*parts, subscription_id])
    if len(key) <= _MAX_ID_LENGTH:
        return key
    return ".".join([*parts, hashlib.sha256(subscription_id.encode()).hexdigest()[:40]])

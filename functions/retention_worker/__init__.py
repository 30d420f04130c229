"""Queue trigger for the retention work queue: shard sweeps, review batches and housekeeping, on any instance."""

from __future__ import annotations

from functions.retention_worker.handler import bp

__all__ = ["bp"]

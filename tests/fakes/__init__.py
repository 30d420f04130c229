"""In-memory fakes of every port, held to the same contract as the real adapters (tests/contract)."""

from __future__ import annotations

from tests.fakes.memory import (
    Fault,
    FaultyPort,
    MemoryAccountStore,
    MemoryAuditLog,
    MemoryClockOffsetStore,
    MemoryDueIndex,
    MemoryEmailSender,
    MemoryLifecyclePublisher,
    MemoryMessageIndex,
    MemoryRejectionStore,
    MemorySandboxGateway,
    MemoryWebhookLedger,
    RacingAccounts,
    build_in_memory,
)

__all__ = [
    "Fault",
    "FaultyPort",
    "MemoryAccountStore",
    "MemoryAuditLog",
    "MemoryClockOffsetStore",
    "MemoryDueIndex",
    "MemoryEmailSender",
    "MemoryLifecyclePublisher",
    "MemoryMessageIndex",
    "MemoryRejectionStore",
    "MemorySandboxGateway",
    "MemoryWebhookLedger",
    "RacingAccounts",
    "build_in_memory",
]

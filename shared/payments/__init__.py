"""Payment gateways: the protocol the settle-balance service charges through, and the embedded sandbox."""

from __future__ import annotations

from shared.payments.gateway import (
    SANDBOX_TOKENS,
    ChargeOutcome,
    ChargeResult,
    GatewayKeyReuseError,
    PaymentGateway,
    SandboxGateway,
)

__all__ = [
    "SANDBOX_TOKENS",
    "ChargeOutcome",
    "ChargeResult",
    "GatewayKeyReuseError",
    "PaymentGateway",
    "SandboxGateway",
]

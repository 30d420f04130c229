"""Automatic retries end to end through the use cases: payment.failed, then the retention timer on the test clock.

Every scenario runs twice: on the in-memory fakes and on Azurite (the real Table Storage adapters, the sandbox
gateway's ledger table, the local outbox sender and the lifecycle queue).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from cli.demo import describe
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import DEFAULT_DUNNING_POLICY
from shared.domain.money import Money
from shared.domain.payment_events import PaymentFailedEvent
from shared.domain.payment_retry import DeclineClass, RetryOutcome, retry_attempts, retry_settlement_id
from shared.domain.payment_success import RETRY_RECEIPT_TEMPLATE
from shared.domain.payments import ChargeOutcome, ChargeResult
from shared.domain.settle_balance import PaymentChoice, SettleCommand
from shared.domain.settlement import Settlement, SettlementStatus
from shared.settings import Settings
from tests.fakes import RacingAccounts, build_in_memory
from tests.support.lifecycle_events import events_of, lifecycle_messages
from tests.support.payment_events import PORTAL, payment_failed_document
from tests.support.retention import RecordingSender

FAILED_AT = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
ADMIN = "user-7"  # the admin of the example event
OWED = Money.parse("49.95", "EUR")  # its one unpaid charge
METHOD = "pm-visa-4242"  # its failed card


@dataclass
class Backend:
    deps: Dependencies
    clock: FixedClock
    sent_subjects: Any
    lifecycle_types: Any

    def ledger(self) -> list[ChargeResult]:
        charges: list[ChargeResult] = self.deps.gateway.ledger()  # type: ignore[attr-defined]
        return charges

    def fail_payment(self, account_id: str, token: str | None, reason: str = "insufficient_funds") -> None:
        document = payment_failed_document(account_id, event_id=f"evt-{uuid.uuid4().hex[:8]}", reason=reason)
        document["time"] = FAILED_AT.isoformat()
        if token is not None:
            document["data"]["paymentMethod"]["gatewayToken"] = token
        self.clock.set(FAILED_AT)
        self.deps.apply_payment_failed(PaymentFailedEvent.model_validate(document))

    def billing_engine_charge(self, account_id: str, token: str) -> None:
        """The billing engine's own charge that failed, made through the sandbox like every other charge."""
        self.deps.gateway.charge(OWED, token, f"engine-{account_id}", account_id=account_id)

    def run_due_until(self, until: datetime, deps: Dependencies | None = None) -> None:
        """A timer that fires exactly when the due index asks, up to `until`."""
        for _ in range(100):
            entries = list(self.deps.due.due(until, limit=1))
            if not entries:
                return
            at = max(entries[0].due_at, self.clock.now())
            self.clock.set(at)
            (deps or self.deps).run_retention(now=at, time_budget=timedelta(minutes=4))
        raise AssertionError("the due index never emptied")


@pytest.fixture(params=["memory", pytest.param("azurite", marks=pytest.mark.azurite)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    clock = FixedClock(FAILED_AT)
    if request.param == "memory":
        deps = build_in_memory(Settings(portal_base_url=PORTAL), clock)
        yield Backend(
            deps,
            clock,
            sent_subjects=lambda: [e.subject for e in deps.email.sent],  # type: ignore[attr-defined]
            lifecycle_types=lambda: [e.type for e in deps.events.events],  # type: ignore[attr-defined]
        )
        return
    azurite = request.getfixturevalue("azurite")
    queue = f"lifecycle-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        storage_connection_string=SecretStr(azurite.connection_string),
        outbox_dir=tmp_path / "outbox",
        portal_base_url=PORTAL,
        lifecycle_queue=queue,
    )
    sender = RecordingSender(tmp_path / "outbox", clock)
    deps = build(settings, clock=clock, email=sender)
    yield Backend(
        deps,
        clock,
        sent_subjects=lambda: [e.subject for e in sender.sent],
        lifecycle_types=lambda: [e["type"] for e in events_of(lifecycle_messages(azurite.connection_string, queue))],
    )


def new_account() -> str:
    return f"acc-{uuid.uuid4().hex[:12]}"


def charges_of(backend: Backend, account_id: str) -> list[ChargeResult]:
    """The gateway's charges for this account (the ledger is shared by every test on one Azurite): the billing
    engine's, and those of every settlement or retry the account holds or any of its retries could have made."""
    partition = backend.deps.accounts.load(account_id)
    keys = {f"engine-{account_id}", *(s.id for s in partition.all(Settlement))}
    keys.update(retry_settlement_id(account_id, METHOD, FAILED_AT, n) for n in range(1, 9))
    return [c for c in backend.ledger() if c.idempotency_key in keys]


def approved_for(backend: Backend, account_id: str) -> list[ChargeResult]:
    return [c for c in charges_of(backend, account_id) if c.outcome is ChargeOutcome.SUCCEEDED]


def test_a_card_that_recovers_is_collected_on_the_first_retry_with_one_charge_and_an_automatic_receipt(
    backend: Backend,
) -> None:
    account_id = new_account()
    backend.billing_engine_charge(account_id, "tok_recovers_on_retry")
    backend.fail_payment(account_id, "tok_recovers_on_retry")

    backend.run_due_until(FAILED_AT + timedelta(days=29))

    partition = backend.deps.accounts.load(account_id)
    (attempt,) = retry_attempts(partition)
    assert (attempt.attempt, attempt.outcome, attempt.amount) == (1, RetryOutcome.APPROVED, OWED)
    assert attempt.at == FAILED_AT + timedelta(days=1)
    assert [(c.idempotency_key, c.amount) for c in approved_for(backend, account_id)] == [(attempt.settlement_id, OWED)]
    # The ledger lists charges by key, not by time: compare them by key.
    assert {c.idempotency_key: c.outcome for c in charges_of(backend, account_id)} == {
        f"engine-{account_id}": ChargeOutcome.DECLINED,
        attempt.settlement_id: ChargeOutcome.SUCCEEDED,
    }
    assert {s.id: s.state for s in partition.subscriptions} == {
        "sub-a": SubscriptionState.ENABLED,
        "sub-b": SubscriptionState.ENABLED,
    }
    assert all(c.settlement_id == attempt.settlement_id for c in partition.charges)
    assert not [a for a in partition.alerts if a.is_open]
    receipts = [n for n in partition.notifications if n.template == RETRY_RECEIPT_TEMPLATE]
    assert len(receipts) == 1
    assert [s for s in backend.sent_subjects() if "automatisch" in s] == [
        "Betaling automatisch geïnd: €\u00a049,95; uw abonnementen zijn weer actief"
    ]  # the example account reads Dutch
    assert "subscription.enabled" in backend.lifecycle_types()
    overview = backend.deps.account_overview(account_id, ADMIN).to_wire()
    assert overview["paymentRetries"] == [
        {
            "attempt": 1,
            "paymentMethodId": "pm-visa-4242",
            "at": "2027-01-05T10:00:00Z",
            "amount": {"amount": "49.95", "currency": "EUR"},
            "outcome": "approved",
            "declineReason": None,
            "declineClass": None,
        }
    ]


def test_a_card_that_always_declines_softly_is_tried_on_every_retry_day_and_never_after_cancellation(
    backend: Backend,
) -> None:
    account_id = new_account()
    backend.fail_payment(account_id, "tok_insufficient_funds")

    backend.run_due_until(FAILED_AT + timedelta(days=40))

    attempts = retry_attempts(backend.deps.accounts.load(account_id))
    policy = backend.deps.policies.for_id(DEFAULT_DUNNING_POLICY)
    assert [a.attempt for a in attempts] == list(range(1, len(policy.retry_days) + 1))
    assert [a.at for a in attempts] == [FAILED_AT + timedelta(days=d) for d in policy.retry_days]
    assert {(a.outcome, a.decline_reason, a.decline_class) for a in attempts} == {
        (RetryOutcome.DECLINED, "insufficient_funds", DeclineClass.SOFT)
    }
    assert approved_for(backend, account_id) == []
    partition = backend.deps.accounts.load(account_id)
    assert {s.state for s in partition.subscriptions if s.id == "sub-a"} == {SubscriptionState.DISABLED}


def test_a_hard_decline_is_never_retried(backend: Backend) -> None:
    account_id = new_account()
    backend.fail_payment(account_id, "tok_visa", reason="expired_card")

    backend.run_due_until(FAILED_AT + timedelta(days=29))

    assert retry_attempts(backend.deps.accounts.load(account_id)) == []
    assert charges_of(backend, account_id) == []


def test_a_retry_that_comes_back_hard_stops_the_retries(backend: Backend) -> None:
    account_id = new_account()
    backend.fail_payment(account_id, "tok_expired_card")

    backend.run_due_until(FAILED_AT + timedelta(days=29))

    (attempt,) = retry_attempts(backend.deps.accounts.load(account_id))
    assert (attempt.attempt, attempt.decline_reason, attempt.decline_class) == (1, "expired_card", DeclineClass.HARD)
    assert [c.idempotency_key for c in charges_of(backend, account_id)] == [attempt.settlement_id]
    shown = describe(backend.deps.accounts.load(account_id))["paymentRetries"]
    assert [(r["attempt"], r["outcome"], r["decline_reason"], r["decline_class"], r["amount"]) for r in shown] == [
        (1, "declined", "expired_card", "hard", "49.95")
    ]


def test_a_failure_without_a_gateway_token_is_never_retried(backend: Backend) -> None:
    account_id = new_account()
    backend.fail_payment(account_id, None)

    backend.run_due_until(FAILED_AT + timedelta(days=29))

    partition = backend.deps.accounts.load(account_id)
    assert retry_attempts(partition) == []
    assert charges_of(backend, account_id) == []
    assert {s.state for s in partition.subscriptions if s.id == "sub-a"} == {SubscriptionState.WARNED}
    assert [m.gateway_token for m in partition.payment_methods] == [None]


def test_a_later_failure_without_the_token_is_not_retried_although_the_token_stays_on_file(backend: Backend) -> None:
    account_id = new_account()
    backend.fail_payment(account_id, "tok_insufficient_funds")
    backend.fail_payment(account_id, None)

    backend.run_due_until(FAILED_AT + timedelta(days=29))

    partition = backend.deps.accounts.load(account_id)
    assert retry_attempts(partition) == []
    assert charges_of(backend, account_id) == []
    assert [m.gateway_token for m in partition.payment_methods] == ["tok_insufficient_funds"]


def test_running_the_same_retry_moment_twice_charges_once(backend: Backend) -> None:
    account_id = new_account()
    backend.fail_payment(account_id, "tok_insufficient_funds")
    first_retry = FAILED_AT + timedelta(days=1)
    backend.clock.set(first_retry)

    backend.deps.run_retention(now=first_retry, time_budget=timedelta(minutes=4))
    backend.deps.run_retention(now=first_retry, time_budget=timedelta(minutes=4))
    backend.deps.run_retention(now=first_retry + timedelta(hours=1), time_budget=timedelta(minutes=4))

    (attempt,) = retry_attempts(backend.deps.accounts.load(account_id))
    assert [c.idempotency_key for c in charges_of(backend, account_id)] == [attempt.settlement_id]


def test_a_retry_racing_a_portal_settlement_charges_once(backend: Backend) -> None:
    account_id = new_account()
    backend.fail_payment(account_id, "tok_insufficient_funds")
    first_retry = FAILED_AT + timedelta(days=1)
    backend.clock.set(first_retry)
    portal = SettleCommand(
        account_id=account_id,
        principal_id=ADMIN,
        subscription_id="sub-a",
        payment=PaymentChoice(token="tok_visa"),
        expected_total=OWED,
        idempotency_key="portal-key-1",
    )
    settled = []
    racing = RacingAccounts(backend.deps.accounts, lambda: settled.append(backend.deps.settle_balance(portal)))
    racing_deps = dataclasses.replace(backend.deps, accounts=racing)

    racing_deps.run_retention(now=first_retry, time_budget=timedelta(minutes=4))

    assert racing.races == 1
    (outcome,) = settled
    assert outcome.status is SettlementStatus.SUCCEEDED
    assert retry_attempts(backend.deps.accounts.load(account_id)) == []
    assert [(c.idempotency_key, c.outcome) for c in charges_of(backend, account_id)] == [
        (outcome.settlement_id, ChargeOutcome.SUCCEEDED)
    ]
    partition = backend.deps.accounts.load(account_id)
    assert {s.state for s in partition.subscriptions} == {SubscriptionState.ENABLED}

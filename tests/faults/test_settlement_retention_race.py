"""Settlements and retention runs race on the same accounts at the moment of cancellation: nobody is charged twice
and no paid subscription ends up cancelled.

Every actor builds its own dependencies (its own clients, as separate workers would) on the same real Azurite.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    Charge,
    ChargeStatus,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.partition import AccountPartition
from shared.domain.payments import ChargeOutcome
from shared.domain.settle_balance import PaymentChoice, SettleCommand, settlement_id_for
from shared.settings import Settings
from shared.storage.sandbox_gateway import SandboxGateway
from tests.faults.published import publish

pytestmark = pytest.mark.azurite

ACCOUNTS = 12
SETTLERS_PER_ACCOUNT = 3
RETENTION_RUNS = 2
ADMIN = "admin-race"
FAILED_AT = datetime(2026, 10, 1, 10, 0, tzinfo=UTC)
# 30 days of grace have passed: the run at this moment cancels every unpaid subscription.
NOW = FAILED_AT + timedelta(days=31)
BALANCE = Money.parse("59.90", "EUR")


def past_due_account(account_id: str) -> AccountPartition:
    """Two subscriptions on a failed card, owing 49.95 and 9.95; the card has a gateway token on file."""
    partition = AccountPartition(account_id=account_id)
    partition.set_account(
        Account(
            id=account_id,
            admin_principal_id=ADMIN,
            notification_email="billing@contoso.example",
            locale="en-US",
            currency="EUR",
        )
    )
    card = PaymentMethod(
        id="pm-card", kind=PaymentMethodKind.CARD, brand="visa", last4="4242", gateway_token="tok_visa"
    ).mark_failed(DeclineReason.INSUFFICIENT_FUNDS, FAILED_AT)
    partition.put(card)
    for number, amount in ((1, "49.95"), (2, "9.95")):
        subscription = Subscription(
            id=f"sub-{number}", name=f"Workload {number}", service="Azure", payment_method_id=card.id
        ).transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, FAILED_AT)
        partition.put(
            subscription,
            Charge(
                invoice_id=f"inv-{number}",
                subscription_id=subscription.id,
                service="Azure",
                amount=Money.parse(amount, "EUR"),
                due_date=date(2026, 9, 30),
                payment_method_id=card.id,
            ),
        )
    return partition


def worker_dependencies(connection_string: str, outbox: Path, lifecycle_queue: str) -> Dependencies:
    settings = Settings(
        storage_connection_string=SecretStr(connection_string), outbox_dir=outbox, lifecycle_queue=lifecycle_queue
    )
    return build(settings, clock=FixedClock(NOW))


def disabled_after_payment(subscription: Subscription) -> bool:
    """True if the subscription was cancelled after the payment that re-enabled it (or without ever coming back)."""
    settled = [
        index
        for index, step in enumerate(subscription.history)
        if step.to_state is SubscriptionState.ENABLED and step.reason is TransitionReason.BALANCE_SETTLED
    ]
    return bool(settled) and any(
        step.to_state is SubscriptionState.DISABLED for step in subscription.history[settled[-1] + 1 :]
    )


def test_racing_settlements_and_retention_runs_charge_once_and_never_cancel_a_paid_subscription(
    azurite: AzuriteProcess, tmp_path: Path
) -> None:
    # GIVEN accounts whose grace period has just ended, each with its cancellation due on the index
    lifecycle_queue = f"lifecycle-{uuid.uuid4().hex[:12]}"
    outbox = tmp_path / "outbox"
    setup = worker_dependencies(azurite.connection_string, outbox, lifecycle_queue)
    account_ids = sorted(f"acc-race-{uuid.uuid4().hex[:12]}" for _ in range(ACCOUNTS))
    for account_id in account_ids:
        setup.due.schedule(account_id, FAILED_AT + timedelta(days=30))
        setup.accounts.commit(past_due_account(account_id))
    keys = {account_id: [f"key-{uuid.uuid4().hex}" for _ in range(SETTLERS_PER_ACCOUNT)] for account_id in account_ids}
    outcomes: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    lock = threading.Lock()
    tasks_count = ACCOUNTS * SETTLERS_PER_ACCOUNT + RETENTION_RUNS
    start = threading.Barrier(tasks_count, timeout=60)
    rng = random.Random(7)
    # A run reviews due accounts in id order. The first half is paid late, likely after the run cancelled it; the
    # second half early, likely before the run gets there; in between, both touch an account at the same time.
    late = set(account_ids[: ACCOUNTS // 2])
    delays = {(a, k): rng.uniform(1.5, 4.0) if a in late else rng.uniform(0, 1.0) for a in account_ids for k in keys[a]}

    def settle(account_id: str, key: str) -> None:
        deps = worker_dependencies(azurite.connection_string, outbox, lifecycle_queue)
        start.wait()
        threading.Event().wait(delays[account_id, key])
        command = SettleCommand(
            account_id=account_id,
            principal_id=ADMIN,
            subscription_id="sub-1",
            payment=PaymentChoice(token="tok_visa"),
            expected_total=BALANCE,
            idempotency_key=key,
        )
        try:
            outcome = deps.settle_balance(command).status.value
        except Exception as error:
            outcome = type(error).__name__
        with lock:
            outcomes[f"settlement: {outcome}"] += 1
            runs["settlements"] += 1

    def retention(barrier: threading.Barrier | None = None) -> None:
        deps = worker_dependencies(azurite.connection_string, outbox, lifecycle_queue)
        if barrier is not None:
            barrier.wait()
        report = deps.run_retention(now=NOW, time_budget=timedelta(minutes=2))
        with lock:
            runs["retention runs"] += 1
            outcomes["retention: accounts reviewed"] += report.accounts_reviewed
            outcomes["retention: accounts failed (stay due)"] += report.accounts_failed
            for kind, count in report.counts.items():
                outcomes[f"retention: {kind.value}"] += count

    tasks = [(settle, (a, k)) for a in account_ids for k in keys[a]] + [(retention, (start,))] * RETENTION_RUNS
    rng.shuffle(tasks)

    # WHEN all of them run at once, and the timer runs once more afterwards
    with ThreadPoolExecutor(tasks_count) as pool:
        for future in [pool.submit(task, *arguments) for task, arguments in tasks]:
            future.result()
    concurrent = Counter(runs)
    retention()

    # THEN each account was charged exactly once, for its whole balance, and every subscription is back
    charges = SandboxGateway(setup.tables, clock=setup.clock).ledger()
    succeeded = Counter(c.idempotency_key for c in charges if c.outcome is ChargeOutcome.SUCCEEDED)
    charged_per_account: dict[str, int] = {}
    subscriptions: list[Subscription] = []
    for account_id in account_ids:
        settlement_ids = {settlement_id_for(account_id, key) for key in keys[account_id]}
        account_charges = [c for c in charges if c.idempotency_key in settlement_ids]
        charged_per_account[account_id] = sum(succeeded[s] for s in settlement_ids)
        assert charged_per_account[account_id] == 1, f"{account_id} must be charged exactly once"
        assert [c.amount for c in account_charges if c.outcome is ChargeOutcome.SUCCEEDED] == [BALANCE]
        partition = setup.accounts.load(account_id)
        assert all(c.status is ChargeStatus.PAID for c in partition.charges)
        for subscription in partition.all(Subscription):
            assert subscription.state is SubscriptionState.ENABLED
            assert not disabled_after_payment(subscription)
            subscriptions.append(subscription)
    paid_then_cancelled = [
        s for s in subscriptions if s.state is not SubscriptionState.ENABLED or disabled_after_payment(s)
    ]
    disabled_then_reenabled = [
        s for s in subscriptions if any(step.to_state is SubscriptionState.DISABLED for step in s.history)
    ]
    publish(
        "settlement_retention_race",
        {
            "accounts": len(charged_per_account),
            "concurrent_settlements": concurrent["settlements"],
            "concurrent_retention_runs": concurrent["retention runs"],
            "retention_runs_after": runs["retention runs"] - concurrent["retention runs"],
            "charges_succeeded": sum(charged_per_account.values()),
            "double_charges": sum(max(0, charged - 1) for charged in charged_per_account.values()),
            "subscriptions_cancelled_before_payment_then_reenabled": len(disabled_then_reenabled),
            "paid_subscriptions_cancelled": len(paid_then_cancelled),
            "outcomes": dict(sorted(outcomes.items())),
        },
    )

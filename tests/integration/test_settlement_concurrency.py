"""Races and crashes: twenty payers at once, a crash between charge and state write, a quote raced by a failure."""

from __future__ import annotations

import dataclasses
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devhost.azurite import AzuriteProcess
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.errors import DomainError
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import ChargeStatus
from shared.domain.money import Money
from shared.domain.payments import ChargeResult
from shared.domain.settle_balance import PENDING_CHARGE_EXPIRY, SettlementInProgressError, settlement_id_for
from shared.domain.settlement import NothingToSettleError, Settlement, SettlementStatus
from shared.services.ports import DueEntry, PaymentGateway
from shared.services.settle_balance import QuoteChangedError
from shared.services.views import SettlementOutcome
from shared.storage.sandbox_gateway import SandboxGateway
from tests.support.settlement_data import (
    ADMIN,
    NOW,
    AccountData,
    charge,
    sent_emails,
    settle_command,
    settlement_deps,
    shared_card_account,
)

pytestmark = pytest.mark.azurite


class SimulatedCrashError(RuntimeError):
    pass


class CrashAfterCharge:
    """A real gateway whose caller dies right after the charge went through, before it could record anything."""

    def __init__(self, gateway: PaymentGateway) -> None:
        self._gateway = gateway

    def charge(self, amount: Money, token: str, idempotency_key: str, *, account_id: str = "") -> ChargeResult:
        self._gateway.charge(amount, token, idempotency_key, account_id=account_id)
        raise SimulatedCrashError("process died after the gateway call")

    def lookup(self, idempotency_key: str) -> ChargeResult | None:
        return self._gateway.lookup(idempotency_key)


class CrashBeforeCharge(CrashAfterCharge):
    def charge(self, amount: Money, token: str, idempotency_key: str, *, account_id: str = "") -> ChargeResult:
        raise SimulatedCrashError("process died before the gateway call")


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path, clock: FixedClock) -> Dependencies:
    return settlement_deps(azurite.connection_string, tmp_path / "outbox", clock)


@pytest.fixture
def account(deps: Dependencies) -> AccountData:
    return shared_card_account().write(deps.accounts)


def ledger_count(deps: Dependencies, settlement_ids: set[str]) -> int:
    gateway = deps.gateway
    assert isinstance(gateway, SandboxGateway)
    return sum(1 for result in gateway.ledger() if result.idempotency_key in settlement_ids)


def attempt(deps: Dependencies, account_id: str, key: str) -> SettlementOutcome | DomainError:
    try:
        return deps.settle_balance(settle_command(account_id, key))
    except DomainError as error:
        return error


def test_twenty_concurrent_settlements_with_different_keys_charge_exactly_once(
    deps: Dependencies, account: AccountData
) -> None:
    keys = [f"key-{n:02d}" for n in range(20)]
    start = threading.Barrier(len(keys))

    def run(key: str) -> SettlementOutcome | DomainError:
        start.wait()
        return attempt(deps, account.id, key)

    with ThreadPoolExecutor(max_workers=len(keys)) as pool:
        results = list(pool.map(run, keys))

    successes = [r for r in results if isinstance(r, SettlementOutcome)]
    refusals = Counter(type(r).__name__ for r in results if not isinstance(r, SettlementOutcome))
    assert len(successes) == 1, refusals
    assert successes[0].status is SettlementStatus.SUCCEEDED
    assert set(refusals) <= {SettlementInProgressError.__name__, NothingToSettleError.__name__}
    assert sum(refusals.values()) == 19
    assert ledger_count(deps, {settlement_id_for(account.id, key) for key in keys}) == 1
    partition = deps.accounts.load(account.id)
    assert [s.status for s in partition.all(Settlement)] == [SettlementStatus.SUCCEEDED]
    assert all(c.status is ChargeStatus.PAID for c in partition.charges)
    assert len(sent_emails(deps)) == 1


def test_the_same_key_sent_five_times_at_once_charges_once_and_answers_alike(
    deps: Dependencies, account: AccountData
) -> None:
    start = threading.Barrier(5)

    def run(_: int) -> SettlementOutcome | DomainError:
        start.wait()
        return attempt(deps, account.id, "same-key")

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(run, range(5)))

    assert all(isinstance(r, SettlementOutcome) for r in results), results
    outcomes = [r for r in results if isinstance(r, SettlementOutcome)]
    assert {(o.settlement_id, o.status) for o in outcomes} == {
        (settlement_id_for(account.id, "same-key"), SettlementStatus.SUCCEEDED)
    }
    assert ledger_count(deps, {settlement_id_for(account.id, "same-key")}) == 1
    assert len(sent_emails(deps)) == 1


def test_a_crash_after_the_charge_is_completed_by_a_retry_without_charging_twice(
    deps: Dependencies, account: AccountData
) -> None:
    crashing = dataclasses.replace(deps, gateway=CrashAfterCharge(deps.gateway))
    command = settle_command(account.id, "key-crash")

    with pytest.raises(SimulatedCrashError):
        crashing.settle_balance(command)

    settlement_id = settlement_id_for(account.id, "key-crash")
    halfway = deps.accounts.load(account.id)
    pending = halfway.get(Settlement, settlement_id)
    assert pending is not None
    assert pending.status is SettlementStatus.PENDING
    assert all(c.status is ChargeStatus.OUTSTANDING for c in halfway.charges)
    assert ledger_count(deps, {settlement_id}) == 1

    outcome = deps.settle_balance(command)

    assert outcome.status is SettlementStatus.SUCCEEDED
    assert ledger_count(deps, {settlement_id}) == 1
    after = deps.accounts.load(account.id)
    assert all(c.status is ChargeStatus.PAID for c in after.charges)
    assert {s.id: s.state for s in after.subscriptions}["sub-a"] is SubscriptionState.ENABLED
    assert len(sent_emails(deps)) == 1


def test_a_crash_after_the_charge_is_completed_by_reconciliation_and_the_retry_then_replays(
    deps: Dependencies, account: AccountData
) -> None:
    command = settle_command(account.id, "key-crash")
    with pytest.raises(SimulatedCrashError):
        dataclasses.replace(deps, gateway=CrashAfterCharge(deps.gateway)).settle_balance(command)

    reconciled = deps.reconcile_settlements(account.id)

    assert [o.status for o in reconciled] == [SettlementStatus.SUCCEEDED]
    replay = deps.settle_balance(command)
    assert (replay.status, replay.replayed) == (SettlementStatus.SUCCEEDED, True)
    assert ledger_count(deps, {settlement_id_for(account.id, "key-crash")}) == 1


def test_while_a_charge_is_in_flight_another_key_is_refused_rather_than_charged(
    deps: Dependencies, account: AccountData
) -> None:
    with pytest.raises(SimulatedCrashError):
        dataclasses.replace(deps, gateway=CrashBeforeCharge(deps.gateway)).settle_balance(settle_command(account.id))

    with pytest.raises(SettlementInProgressError):
        deps.settle_balance(settle_command(account.id, "key-other"))


def test_a_claim_whose_charge_never_happened_is_released_after_the_expiry(
    deps: Dependencies, account: AccountData, clock: FixedClock
) -> None:
    crashed = settle_command(account.id, "key-crashed")
    with pytest.raises(SimulatedCrashError):
        dataclasses.replace(deps, gateway=CrashBeforeCharge(deps.gateway)).settle_balance(crashed)
    clock.advance(PENDING_CHARGE_EXPIRY + timedelta(seconds=1))

    fresh = deps.settle_balance(settle_command(account.id, "key-fresh"))

    assert fresh.status is SettlementStatus.SUCCEEDED
    stale = deps.settle_balance(crashed)
    assert (stale.status, stale.reason) == (SettlementStatus.DECLINED, "not_charged")
    assert ledger_count(deps, {settlement_id_for(account.id, k) for k in ("key-crashed", "key-fresh")}) == 1


def test_a_pending_charge_is_scheduled_for_reconciliation_on_the_due_index(
    deps: Dependencies, account: AccountData
) -> None:
    with pytest.raises(SimulatedCrashError):
        dataclasses.replace(deps, gateway=CrashBeforeCharge(deps.gateway)).settle_balance(settle_command(account.id))

    due = [entry for entry in deps.due.due(NOW + PENDING_CHARGE_EXPIRY) if entry.account_id == account.id]
    assert due, "a crashed claim must leave a due entry for the timer"


class FailureLandsMeanwhile:
    """Wraps the due index: a payment.failed commits between the settle request's read and its write."""

    def __init__(self, deps: Dependencies, account_id: str) -> None:
        self._due = deps.due
        self._deps = deps
        self._account_id = account_id
        self._fired = False

    def schedule(self, account_id: str, due_at: datetime) -> DueEntry:
        if not self._fired and account_id == self._account_id:
            self._fired = True
            partition = self._deps.accounts.load(account_id)
            partition.put(charge("inv-late", "sub-c", "5.00"))
            self._deps.accounts.commit(partition)
        return self._due.schedule(account_id, due_at)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._due, name)


def test_a_failure_that_lands_between_quote_read_and_claim_is_detected_by_etag(
    deps: Dependencies, account: AccountData
) -> None:
    quote = deps.quote_settlement(account.id, ADMIN, "sub-a")
    racing = dataclasses.replace(deps, due=FailureLandsMeanwhile(deps, account.id))

    with pytest.raises(QuoteChangedError) as refused:
        racing.settle_balance(settle_command(account.id, "key-race", quote_version=quote.quote_version))

    assert refused.value.quote.total.amount == "74.95"
    assert ledger_count(deps, {settlement_id_for(account.id, "key-race")}) == 0
    assert deps.accounts.load(account.id).all(Settlement) == []

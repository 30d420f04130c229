"""Dunning simulation: a documented portfolio of failed card payments walked through 60 days on the test clock.

The portfolio, per 20 accounts (standard: 200 accounts, quick: 60); each account has one subscription that owes one
charge of 10.00 EUR on one card, and fails on day 0 with the decline reason and `data.paymentMethod.gatewayToken`
below. "Engine charge": the billing engine's failed charge went through the sandbox gateway (key `engine-<account>`)
before the event, so it is in the ledger, as the gateway's first charge of that card.

  cohort        per 20  token                   reason               engine charge  what is expected
  recovers-1st       5  tok_recovers_on_retry   insufficient_funds   yes            the 1st retry (day 1) succeeds
  recovers-2nd       2  tok_recovers_on_retry   insufficient_funds   no             the 1st retry is the token's first
                                                                                    charge (declines), the 2nd succeeds
  never              4  tok_insufficient_funds  insufficient_funds   yes            every retry declines softly
  portal             2  tok_insufficient_funds  insufficient_funds   yes            the customer settles in the portal
                                                                                    with a new card (tok_visa) on day 4
  expired            2  tok_expired_card        expired_card         yes            hard: never retried
  stolen             2  tok_stolen_card         stolen_card          yes            hard: never retried
  turns-hard         1  tok_expired_card        do_not_honor         no             soft, but the 1st retry comes back
                                                                                    expired_card: no retry after it
  no-token           2  (none)                  insufficient_funds   -              nothing to retry

Within each cohort the failures are spread over day 0, round robin at 0, 6, 12 and 18 hours after the start, so the
days to recovery show the passes' cadence too (a retry falls due between passes and is made by the next). The default
policy applies (retry days 1, 3, 5, 7, 10, 14, 21 after the failure; cancellation on day 30). The events go through
`deps.apply_payment_failed` at their moment on the test clock. Then the test clock (TEST_CLOCK_ENABLED, stored in
Azurite) is advanced step by step (quick: 1 day, standard: 6 hours) to day 60; at each step the timer's use case
starts a pass (`start_retention_pass`) and the retention work queue is drained through the worker's own handler
(`handle_work`), on dependencies built afresh at each step, as an instance that reads the moved clock. Every figure
is counted afterwards from storage: the account partitions (retry attempts, state history) and the sandbox gateway's
ledger table.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.environment import Workbench, bench_settings
from bench.report import Dunning, DunningCohort
from bench.seeding import ADMIN, CHARGE_AMOUNT, SEED_WORKERS, payment_failed_document
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.partition import AccountPartition
from shared.domain.payment_events import PaymentFailedEvent
from shared.domain.payment_retry import DeclineClass, RetryOutcome, decline_class, retry_attempts
from shared.domain.payments import ChargeOutcome, ChargeResult
from shared.domain.settle_balance import PaymentChoice, SettleCommand
from shared.domain.settlement import SettlementStatus
from shared.storage.layout import GATEWAY_PARTITION, GATEWAY_TABLE
from tests.support.work_queue import clear_work_queues, drain, worker_on

# The bench's real time; the test clock runs ahead of it by the offset it keeps in Azurite.
START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
HORIZON_DAYS = 60
PORTFOLIO_UNIT = 20
FAILURE_OFFSETS = tuple(timedelta(hours=h) for h in (0, 6, 12, 18))


@dataclass(frozen=True)
class Cohort:
    name: str
    per_unit: int
    token: str | None
    reason: str
    engine_charge: bool
    portal_day: int | None = None


COHORTS = (
    Cohort("recovers-1st", 5, "tok_recovers_on_retry", "insufficient_funds", engine_charge=True),
    Cohort("recovers-2nd", 2, "tok_recovers_on_retry", "insufficient_funds", engine_charge=False),
    Cohort("never", 4, "tok_insufficient_funds", "insufficient_funds", engine_charge=True),
    Cohort("portal", 2, "tok_insufficient_funds", "insufficient_funds", engine_charge=True, portal_day=4),
    Cohort("expired", 2, "tok_expired_card", "expired_card", engine_charge=True),
    Cohort("stolen", 2, "tok_stolen_card", "stolen_card", engine_charge=True),
    Cohort("turns-hard", 1, "tok_expired_card", "do_not_honor", engine_charge=False),
    Cohort("no-token", 2, None, "insufficient_funds", engine_charge=False),
)
assert sum(c.per_unit for c in COHORTS) == PORTFOLIO_UNIT


@dataclass(frozen=True)
class Member:
    account_id: str
    cohort: Cohort
    fails_after: timedelta  # after START, on day 0

    @property
    def engine_key(self) -> str:
        return f"engine-{self.account_id}"


@dataclass(frozen=True)
class LedgerRow:
    idempotency_key: str
    account_id: str
    charged_at: datetime
    result: ChargeResult


def portfolio(accounts: int, run: str) -> list[Member]:
    if accounts % PORTFOLIO_UNIT:
        raise ValueError(f"the portfolio comes in units of {PORTFOLIO_UNIT} accounts, not {accounts}")
    units = accounts // PORTFOLIO_UNIT
    return [
        Member(f"dun-{run}-{cohort.name}-{n:04d}", cohort, FAILURE_OFFSETS[n % len(FAILURE_OFFSETS)])
        for cohort in COHORTS
        for n in range(1, cohort.per_unit * units + 1)
    ]


def describe_portfolio(accounts: int) -> list[str]:
    units = accounts // PORTFOLIO_UNIT
    hours = ", ".join(f"{offset / timedelta(hours=1):g}" for offset in FAILURE_OFFSETS)
    lines = [f"{accounts} accounts, one 10.00 EUR charge each, failed on day 0 (round robin at {hours} h):"]
    for c in COHORTS:
        engine = "yes" if c.engine_charge else "no"
        portal = f", settles in the portal on day {c.portal_day}" if c.portal_day else ""
        lines.append(
            f"{c.name:<13}{c.per_unit * units:>4}  token {c.token or '(none)':<23} reason {c.reason:<19}"
            f" engine charge {engine}{portal}"
        )
    return lines


def dunning_figure(
    bench: Workbench, accounts: int, step: timedelta, progress: Callable[[str], None], run: str = "p"
) -> Dunning:
    """Apply the portfolio's failures, walk 60 days on the test clock with a full pass per step, count the outcome."""
    members = portfolio(accounts, run)
    clear_work_queues(bench.connection_string)
    deps = _instance(bench)
    deps.reset_test_clock()
    at = START
    for offset in FAILURE_OFFSETS:
        deps = _advanced(bench, deps, START + offset - at)
        at = START + offset
        group = [m for m in members if m.fails_after == offset]
        with ThreadPoolExecutor(SEED_WORKERS) as pool:
            list(pool.map(functools.partial(_fail, deps), group))
    progress(f"dunning: {len(members)} payment.failed applied; walking {HORIZON_DAYS} days in steps of {step}")
    began = time.monotonic()
    moments = [START + n * step for n in range(1, int(timedelta(days=HORIZON_DAYS) / step) + 1)]
    moments = [moment for moment in moments if moment > at]
    passes = failures = 0
    settled: set[str] = set()
    for n, moment in enumerate(moments, start=1):
        deps = _advanced(bench, deps, moment - at)
        at = moment
        now = deps.clock.now()
        for member in members:
            due_day = member.cohort.portal_day
            if due_day is not None and member.account_id not in settled and now >= START + timedelta(days=due_day):
                _settle_in_portal(deps, member)
                settled.add(member.account_id)
        deps.start_retention_pass(now)
        failures += drain(bench.connection_string, worker_on(deps)).failures
        passes += 1
        if n % max(1, len(moments) // 6) == 0:
            progress(f"dunning: day {(now - START) / timedelta(days=1):.1f}, {passes} passes")
    walked = time.monotonic() - began
    figure = count_outcome(deps, members, accounts=accounts, step=step, passes=passes, seconds=walked)
    figure.worker_failures = failures
    figure.portfolio = describe_portfolio(accounts)
    deps.reset_test_clock()
    return figure


def _instance(bench: Workbench) -> Dependencies:
    """The production wiring with the test clock on, as a newly started instance builds it (it reads the clock's
    offset afresh: an instance that lives on sees a moved clock within TEST_CLOCK_REFRESH)."""
    settings = bench_settings(bench.connection_string, bench.directory / "dunning-outbox", test_clock_enabled=True)
    return build(settings, clock=FixedClock(START))


def _advanced(bench: Workbench, deps: Dependencies, by: timedelta) -> Dependencies:
    if by <= timedelta(0):
        return deps
    deps.advance_test_clock(by)
    return _instance(bench)


def _fail(deps: Dependencies, member: Member) -> None:
    cohort = member.cohort
    if cohort.engine_charge:
        assert cohort.token is not None
        engine = deps.gateway.charge(CHARGE_AMOUNT, cohort.token, member.engine_key, account_id=member.account_id)
        if (engine.outcome, engine.reason) != (ChargeOutcome.DECLINED, cohort.reason):
            raise AssertionError(f"{cohort.name}: the engine's charge answered {engine.outcome} {engine.reason}")
    document = payment_failed_document(member.account_id, subscriptions=1, charged=1, when=START.date().isoformat())
    document["data"]["reason"] = cohort.reason
    if cohort.token is not None:
        document["data"]["paymentMethod"]["gatewayToken"] = cohort.token
    deps.apply_payment_failed(PaymentFailedEvent.model_validate(document))


def _settle_in_portal(deps: Dependencies, member: Member) -> None:
    partition = deps.accounts.load(member.account_id)
    (subscription,) = partition.subscriptions
    command = SettleCommand(
        account_id=member.account_id,
        principal_id=ADMIN,
        subscription_id=subscription.id,
        payment=PaymentChoice(token="tok_visa"),
        expected_total=CHARGE_AMOUNT,
        idempotency_key=f"portal-{member.account_id}",
    )
    outcome = deps.settle_balance(command)
    if outcome.status is not SettlementStatus.SUCCEEDED:
        raise AssertionError(f"the portal settlement of {member.account_id} ended {outcome.status}")


def gateway_ledger(deps: Dependencies) -> list[LedgerRow]:
    rows = deps.tables.table(GATEWAY_TABLE).query_entities("PartitionKey eq @pk", parameters={"pk": GATEWAY_PARTITION})
    return [
        LedgerRow(
            idempotency_key=str(row["IdempotencyKey"]),
            account_id=str(row.get("AccountId", "")),
            charged_at=_utc(row["ChargedAt"]),
            result=ChargeResult.model_validate_json(row["Result"]),
        )
        for row in rows
    ]


def _utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.astimezone(UTC)


def count_outcome(
    deps: Dependencies, members: list[Member], *, accounts: int, step: timedelta, passes: int, seconds: float
) -> Dunning:
    """Every figure counted from the partitions and the gateway's ledger."""
    by_account: dict[str, list[LedgerRow]] = {}
    for row in gateway_ledger(deps):
        by_account.setdefault(row.account_id, []).append(row)
    cohorts = {c.name: DunningCohort(cohort=c.name, accounts=0) for c in COHORTS}
    recovery_days: list[float] = []
    recovery_attempts: list[int] = []
    for member in members:
        partition = deps.accounts.load(member.account_id)
        ledger = sorted(by_account.get(member.account_id, []), key=lambda r: (r.charged_at, r.idempotency_key))
        _count_member(
            cohorts[member.cohort.name],
            member,
            partition,
            ledger,
            recovery_days=recovery_days,
            recovery_attempts=recovery_attempts,
        )
    rows = list(cohorts.values())
    return Dunning(
        accounts=accounts,
        step_hours=step / timedelta(hours=1),
        days=HORIZON_DAYS,
        passes=passes,
        seconds=round(seconds, 1),
        cohorts=rows,
        recovered_by_retry=sum(r.recovered_by_retry for r in rows),
        retried=sum(r.retried for r in rows),
        retry_charges=sum(r.retry_attempts for r in rows),
        recovery_attempt_numbers=sorted(recovery_attempts),
        days_to_recovery=_spread(recovery_days),
        cancelled=sum(r.cancelled for r in rows),
        hard_declined_charged=sum(r.charged_after_hard_decline for r in rows),
        charged_twice=sum(r.charged_twice for r in rows),
        charged_after_paid=sum(r.charged_after_paid for r in rows),
    )


def _count_member(
    row: DunningCohort,
    member: Member,
    partition: AccountPartition,
    ledger: list[LedgerRow],
    *,
    recovery_days: list[float],
    recovery_attempts: list[int],
) -> None:
    (subscription,) = partition.subscriptions
    failed_at = next(t.at for t in subscription.history if t.reason is TransitionReason.PAYMENT_FAILED)
    attempts = retry_attempts(partition)
    approved = [a for a in attempts if a.outcome is RetryOutcome.APPROVED]
    own = [r for r in ledger if r.idempotency_key != member.engine_key]
    succeeded = [r for r in own if r.result.outcome is ChargeOutcome.SUCCEEDED]
    row.accounts += 1
    row.retried += bool(attempts)
    row.retry_attempts += len(attempts)
    row.ledger_charges += len(own)
    row.ledger_successes += len(succeeded)
    row.charged_twice += len(succeeded) > 1
    if approved:
        (recovery,) = approved
        row.recovered_by_retry += 1
        recovery_attempts.append(recovery.attempt)
        recovery_days.append((recovery.at - failed_at) / timedelta(days=1))
    elif succeeded:
        row.settled_otherwise += 1
    if succeeded:
        row.charged_after_paid += sum(1 for r in own if r.charged_at > succeeded[0].charged_at)
    if any(t.to_state is SubscriptionState.DISABLED for t in subscription.history):
        row.cancelled += 1
    row.enabled_at_end += subscription.state is SubscriptionState.ENABLED
    hard_known = _hard_decline_known_at(member, partition, own, failed_at)
    if hard_known is not None:
        at, revealed_by = hard_known
        row.hard_declined += 1
        row.charged_after_hard_decline += sum(1 for r in own if r.idempotency_key != revealed_by and r.charged_at >= at)


def _hard_decline_known_at(
    member: Member, partition: AccountPartition, own: list[LedgerRow], failed_at: datetime
) -> tuple[datetime, str | None] | None:
    """When the card was known to be hard-declined (the failure itself, or the first retry answered hard), and the
    ledger row that told; None for a card never declined hard."""
    (method,) = [m for m in partition.payment_methods if m.id == partition.subscriptions[0].payment_method_id]
    if method.failed_reason is not None and decline_class(method.failed_reason) is DeclineClass.HARD:
        return failed_at, None
    hard = [
        r
        for r in own
        if r.result.outcome is ChargeOutcome.DECLINED and decline_class(r.result.reason) is DeclineClass.HARD
    ]
    return (hard[0].charged_at, hard[0].idempotency_key) if hard else None


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
        "count": len(values),
    }

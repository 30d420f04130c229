"""A retention test world on real Azurite: accounts written straight through AccountStore + DueIndex, a fixed clock."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.email import OutgoingEmail, SendOutcome
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    Charge,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.outbox import Notification
from shared.domain.partition import AccountPartition
from shared.domain.payment_retry import retrying_subscription_ids
from shared.domain.retention_policy import next_review_at
from shared.domain.settlement import Settlement, apply_payment, settlement_scope
from shared.email import OutboxEmailSender
from shared.services.ports import EmailSender
from shared.services.retention import RetentionReport
from shared.services.unit_of_work import with_fresh_partition
from shared.settings import Settings, retention_policy
from shared.storage.layout import DUE_TABLE
from shared.storage.tables import RequestCounter
from tests.support.lifecycle_events import events_of, lifecycle_messages

PORTAL = "https://portal.contoso.example"
ADMIN_EMAIL = "ada.admin@contoso.example"
SUBSCRIPTION_NAME = "Ada's production workloads"
SENDER = "billing@pastdue.example"
# A failure at 10:00 UTC; the timer runs daily at 02:00 UTC, so each milestone is acted on the next night.
FAILED_AT = datetime.fromisoformat("2027-01-04T10:00:00+00:00")


class RecordingSender:
    """The real local outbox sender, plus a list of every send call (repeats included)."""

    def __init__(self, directory: Path, clock: FixedClock) -> None:
        self._sender = OutboxEmailSender(directory, SENDER, clock=clock.now)
        self._lock = threading.Lock()
        self.directory = directory
        self.sent: list[OutgoingEmail] = []

    def send(self, email: OutgoingEmail) -> SendOutcome:
        with self._lock:
            self.sent.append(email)
        return self._sender.send(email)

    @property
    def eml_files(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml")) if self.directory.exists() else []


@dataclass
class World:
    connection_string: str
    clock: FixedClock
    email: RecordingSender
    settings: Settings
    counter: RequestCounter = field(default_factory=RequestCounter)
    deps: Dependencies = field(init=False)

    def __post_init__(self) -> None:
        self.deps = self.build()
        clear_due_index(self.deps)

    def build(self, email: EmailSender | None = None) -> Dependencies:
        """Dependencies as another process would build them: own clients, same storage, same clock."""
        return build(self.settings, clock=self.clock, request_hook=self.counter, email=email or self.email)

    def run(
        self, at: datetime, *, deps: Dependencies | None = None, budget: timedelta = timedelta(minutes=4), **kwargs: Any
    ) -> RetentionReport:
        self.clock.set(at)
        return (deps or self.deps).run_retention(now=at, time_budget=budget, **kwargs)

    def load(self, account_id: str) -> AccountPartition:
        return self.deps.accounts.load(account_id)

    def subscription(self, account_id: str, subscription_id: str = "sub-1") -> Subscription:
        subscription = self.load(account_id).get(Subscription, subscription_id)
        assert subscription is not None
        return subscription

    def notifications(self, account_id: str) -> list[Notification]:
        return sorted(self.load(account_id).notifications, key=lambda n: (n.created_at, n.id))

    def due_entries(self, account_id: str, at: datetime) -> list[datetime]:
        return [e.due_at for e in self.deps.due.due(at) if e.account_id == account_id]

    def lifecycle_events(self) -> list[dict[str, Any]]:
        """Every event on the lifecycle queue, decoded from its base64 CloudEvents JSON batch (and left there)."""
        return events_of(lifecycle_messages(self.connection_string, self.settings.lifecycle_queue))


def make_world(connection_string: str, tmp_path: Path, **settings: Any) -> World:
    clock = FixedClock(FAILED_AT)
    app_settings = Settings(
        storage_connection_string=SecretStr(connection_string),
        outbox_dir=tmp_path / "outbox",
        portal_base_url=PORTAL,
        lifecycle_queue=f"lifecycle-{uuid.uuid4().hex[:12]}",
        **settings,
    )
    return World(connection_string, clock, RecordingSender(tmp_path / "outbox", clock), app_settings)


def new_account_id() -> str:
    return f"acc-{uuid.uuid4().hex[:12]}"


def seed_past_due_account(
    world: World,
    account_id: str,
    *,
    past_due_since: datetime = FAILED_AT,
    subscriptions: int = 1,
    decline: DeclineReason = DeclineReason.INSUFFICIENT_FUNDS,
    locale: str = "en-US",
    schedule: bool = True,
    gateway_token: str | None = None,
) -> AccountPartition:
    """An account whose card failed at `past_due_since`: each subscription PastDue with one unpaid charge.

    Without `gateway_token` the card is not retried automatically (as a payment.failed without one leaves it)."""
    partition = AccountPartition(account_id=account_id)
    partition.set_account(
        Account(
            id=account_id,
            admin_principal_id="admin-1",
            notification_email=ADMIN_EMAIL,
            locale=locale,
            currency="EUR",
        )
    )
    card = PaymentMethod(
        id="pm-card",
        kind=PaymentMethodKind.CARD,
        brand="visa",
        last4="4242",
        gateway_token=gateway_token,
        auto_retry=gateway_token is not None,
    ).mark_failed(decline, past_due_since)
    partition.put(card)
    for n in range(1, subscriptions + 1):
        subscription = Subscription(
            id=f"sub-{n}",
            name=SUBSCRIPTION_NAME if n == 1 else f"Workload {n}",
            service="Virtual Machines",
            payment_method_id=card.id,
        ).transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, past_due_since)
        partition.put(
            subscription,
            Charge(
                invoice_id=f"inv-{n}",
                subscription_id=subscription.id,
                service=subscription.service,
                amount=Money(minor=1_234_50 * n, currency="EUR"),
                due_date=date(2027, 1, 1),
                payment_method_id=card.id,
            ),
        )
    if schedule:
        schedule_review(world, partition, after=past_due_since)
    world.deps.accounts.commit(partition)
    return partition


def schedule_review(world: World, partition: AccountPartition, *, after: datetime) -> None:
    """What the payment.failed service does: put the account's next milestone on the due index."""
    retrying = retrying_subscription_ids(partition)
    review_at = next_review_at(partition.subscriptions, retention_policy(world.settings), after, retrying=retrying)
    assert review_at is not None
    world.deps.due.schedule(partition.account_id, review_at)


def settle(world: World, account_id: str, at: datetime, subscription_id: str = "sub-1") -> Settlement:
    """What a successful settle-balance does to the partition, through the shared settlement rule."""
    done: list[Settlement] = []

    def change(partition: AccountPartition) -> None:
        subscription = partition.get(Subscription, subscription_id)
        assert subscription is not None
        assert partition.account is not None
        scope = settlement_scope(subscription, partition.charges, partition.account.currency)
        settlement = Settlement(
            id=f"stl-{uuid.uuid4().hex[:8]}",
            subscription_id=subscription.id,
            failed_payment_method_id=scope.failed_payment_method_id,
            payment_method_id=scope.selected_payment_method_id,
            payment_method_kind=PaymentMethodKind.CARD,
            invoice_ids=scope.invoice_ids,
            total=scope.total,
            created_at=at,
        )
        effects = apply_payment(
            settlement, partition.subscriptions, partition.charges, partition.payment_methods, at=at
        )
        partition.put(
            *effects.charges, *effects.payment_methods, settlement.succeed(effects, at), *effects.subscriptions
        )
        done[:] = [settlement]

    with_fresh_partition(world.deps.accounts, account_id, change)
    return done[0]


def nightly_runs(start: datetime, end: datetime) -> list[datetime]:
    """02:00 UTC every day from the night after `start` up to `end`."""
    first = start.replace(hour=2, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return [first + timedelta(days=n) for n in range((end - first).days + 1)]


def clear_due_index(deps: Dependencies) -> None:
    """Tests share one Azurite: start every retention test with an empty due index."""
    table = deps.tables.table(DUE_TABLE)
    for row in list(table.list_entities(select=["PartitionKey", "RowKey"])):
        table.delete_entity(row["PartitionKey"], row["RowKey"])

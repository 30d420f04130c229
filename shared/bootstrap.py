"""The composition root: real adapters built from Settings, once per worker process, and the use cases bound to them.

Handlers, the CLI and the tests get their dependencies here; services never import this module.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core.credentials import TokenCredential

from shared import connections
from shared.domain.account_update import AccountUpdatedResult
from shared.domain.clock import Clock, OffsetClock, SystemClock
from shared.domain.delivery_reports import DeliveryReportOutcome, DeliveryReportResult, EmailDeliveryReport
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.holds import HoldChange
from shared.domain.payment_events import AccountUpdatedEvent, PaymentFailedEvent, PaymentReceivedEvent
from shared.domain.payment_failure import PaymentFailedResult
from shared.domain.rejection import Rejection, RejectionStatus
from shared.domain.retention_plan import RetentionAction, RetentionActionKind
from shared.domain.retention_work import (
    RETENTION_WORK_QUEUE,
    AccountReview,
    Housekeeping,
    ShardSweep,
)
from shared.domain.settle_balance import SettleCommand
from shared.email import EmailRenderer, OutboxEmailSender
from shared.services import (
    account_updated,
    account_views,
    backlog,
    clock_travel,
    delivery_reports,
    holds,
    payment_failed,
    payment_received,
    ports,
    rejections,
    retention,
    retention_work,
    settle_balance,
)
from shared.services.backlog import Backlog
from shared.services.clock_travel import ClockReading
from shared.services.delivery import DeliveryReport, Outbox, deliver
from shared.services.payment_received import PaymentReceivedResult
from shared.services.ports import (
    AccountUnitOfWork,
    AuditLog,
    ClockOffsetStore,
    DueIndex,
    EmailSender,
    LifecyclePublisher,
    MessageIndex,
    MessageSender,
    PaymentGateway,
    RejectionStore,
    WebhookLedger,
    WorkQueue,
)
from shared.services.retention import Retention, RetentionReport
from shared.services.retention_work import BatchReviewed, PassStarted, RetentionWork, ShardSwept
from shared.services.settle_balance import Payments
from shared.services.views import NotificationEmailView, Overview, Quote, SettlementOutcome, SettlementTerms
from shared.settings import Settings, dunning_policies
from shared.storage.account_store import AccountStore
from shared.storage.audit_log import TableAuditLog
from shared.storage.clock_offset import TableClockOffsetStore
from shared.storage.due_index import TableDueIndex
from shared.storage.message_index import TableMessageIndex
from shared.storage.rejection_store import TableRejectionStore
from shared.storage.sandbox_gateway import SandboxGateway
from shared.storage.tables import INTERACTIVE_BOUNDS, RequestBounds, TableStorage
from shared.storage.webhook_ledger import TableWebhookLedger
from shared.telemetry import ACCOUNT_ID, Telemetry, configure_telemetry

# Retention actions that move a subscription into a state, for the transitions metric.
_STATE_OF_ACTION = {
    RetentionActionKind.FINAL_NOTICE: "Warned",
    RetentionActionKind.DISABLED: "Disabled",
    RetentionActionKind.DELETED: "Deleted",
    RetentionActionKind.REENABLED: "Enabled",
}
# How stale a trigger's reading of the test clock may be: a `clock set` or `clock advance` reaches every
# instance within this (docs/retention.md).
TEST_CLOCK_REFRESH = timedelta(seconds=2)


@dataclass(frozen=True)
class Dependencies:
    """Every port's adapter, and each use case with the ports it needs."""

    settings: Settings
    clock: Clock
    accounts: AccountUnitOfWork
    due: DueIndex
    audit: AuditLog
    webhooks: WebhookLedger
    rejections: RejectionStore
    gateway: PaymentGateway
    email: EmailSender
    events: LifecyclePublisher
    messages: MessageIndex
    renderer: ports.EmailRenderer
    telemetry: Telemetry
    storage: TableStorage | None = None  # the raw tables, for operators' tools and the tests that inspect them
    real_clock: Clock | None = None  # real time, when `clock` is the test clock
    clock_offsets: ClockOffsetStore | None = None  # where the test clock is kept
    work_queue: WorkQueue | None = None  # the retention work queue (timer, sweeps and review batches)

    @property
    def wall_clock(self) -> Clock:
        """Real time whatever the test clock reads: the webhook signature window and replay ledger keep to it."""
        return self.real_clock or self.clock

    @property
    def test_clock_store(self) -> ClockOffsetStore:
        if self.clock_offsets is None:
            raise RuntimeError("these dependencies have no test clock store")
        return self.clock_offsets

    @property
    def tables(self) -> TableStorage:
        """The raw tables behind the adapters, for operators' tools and benchmarks (absent in an in-memory build)."""
        if self.storage is None:
            raise RuntimeError("these dependencies are not backed by Table Storage")
        return self.storage

    @property
    def policies(self) -> DunningPolicies:
        return dunning_policies(self.settings)

    @property
    def outbox(self) -> Outbox:
        return Outbox(
            store=self.accounts,
            due=self.due,
            email=self.email,
            renderer=self.renderer,
            events=self.events,
            messages=self.messages,
            clock=self.clock,
        )

    @property
    def retention_work(self) -> RetentionWork:
        if self.work_queue is None:
            raise RuntimeError("these dependencies have no retention work queue")
        return RetentionWork(
            retention=self.retention, queue=self.work_queue, batch_size=self.settings.retention_batch_size
        )

    @property
    def terms(self) -> SettlementTerms:
        settings = self.settings
        return SettlementTerms(
            portal_base_url=settings.portal_base_url,
            remittance_beneficiary=settings.remittance_beneficiary,
            remittance_iban=settings.remittance_iban,
            remittance_bic=settings.remittance_bic,
        )

    @property
    def payments(self) -> Payments:
        return Payments(
            accounts=self.accounts,
            due=self.due,
            gateway=self.gateway,
            outbox=self.outbox,
            clock=self.clock,
            terms=self.terms,
        )

    @property
    def retention(self) -> Retention:
        return Retention(
            accounts=self.accounts,
            due=self.due,
            audit=self.audit,
            webhooks=self.webhooks,
            outbox=self.outbox,
            payments=self.payments,
            clock=self.clock,
            policies=self.policies,
            portal_base_url=self.settings.portal_base_url,
        )

    # --- the use cases ------------------------------------------------------------------------------------------

    def apply_payment_failed(self, event: PaymentFailedEvent) -> PaymentFailedResult:
        with self.telemetry.use_case("apply_payment_failed", event_id=event.id, account_id=event.data.account.id):
            result = payment_failed.apply_payment_failed(
                event,
                accounts=self.accounts,
                due=self.due,
                audit=self.audit,
                outbox=self.outbox,
                clock=self.clock,
                policies=self.policies,
                portal_base_url=self.settings.portal_base_url,
            )
        for _ in result.past_due_subscription_ids:
            self.telemetry.subscription_entered("PastDue")
        for _ in result.emails_sent:
            self.telemetry.email_reported("sent")
        return result

    def apply_account_updated(self, event: AccountUpdatedEvent) -> AccountUpdatedResult:
        with self.telemetry.use_case("apply_account_updated", event_id=event.id, account_id=event.data.account_id):
            return account_updated.apply_account_updated(
                event, accounts=self.accounts, due=self.due, clock=self.clock, policies=self.policies
            )

    def apply_payment_received(self, event: PaymentReceivedEvent) -> PaymentReceivedResult:
        with self.telemetry.use_case("apply_payment_received", event_id=event.id, account_id=event.data.account_id):
            result = payment_received.apply_payment_received(
                event, accounts=self.accounts, outbox=self.outbox, clock=self.clock, terms=self.terms
            )
        for _ in result.reenabled_subscription_ids:
            self.telemetry.subscription_entered("Enabled")
        return result

    def apply_delivery_report(self, report: EmailDeliveryReport) -> DeliveryReportResult:
        with self.telemetry.use_case("apply_delivery_report") as span:
            result = delivery_reports.apply_delivery_report(
                report, accounts=self.accounts, messages=self.messages, outbox=self.outbox, clock=self.clock
            )
            span.add({ACCOUNT_ID: result.account_id})
        if result.status is not None and result.outcome is DeliveryReportOutcome.APPLIED:
            self.telemetry.email_reported(result.status.value)
        return result

    def account_overview(self, account_id: str, principal_id: str) -> Overview:
        return account_views.account_overview(self.accounts, self.clock, self.policies, account_id, principal_id)

    def hold_account(self, account_id: str, *, reason: str, set_by: str, until: datetime | None) -> HoldChange:
        return holds.hold_account(
            account_id,
            reason=reason,
            set_by=set_by,
            until=until,
            accounts=self.accounts,
            audit=self.audit,
            due=self.due,
            clock=self.clock,
        )

    def release_account(self, account_id: str, *, released_by: str) -> HoldChange:
        return holds.release_account(
            account_id,
            released_by=released_by,
            accounts=self.accounts,
            audit=self.audit,
            due=self.due,
            clock=self.clock,
        )

    def quote_settlement(
        self, account_id: str, principal_id: str, subscription_id: str, payment_method_id: str | None = None
    ) -> Quote:
        return account_views.quote_settlement(
            self.accounts, account_id, principal_id, subscription_id, payment_method_id
        )

    def notification_email(
        self, account_id: str, principal_id: str, new_address: str | None = None
    ) -> NotificationEmailView:
        return account_views.notification_email(self.accounts, self.clock, account_id, principal_id, new_address)

    def settle_balance(self, command: SettleCommand) -> SettlementOutcome:
        with self.telemetry.use_case("settle_balance", account_id=command.account_id):
            outcome = settle_balance.settle_balance(self.payments, command)
        if not outcome.replayed:
            self.telemetry.settlement_finished(outcome.status.value)
            for _ in outcome.reenabled_subscriptions:
                self.telemetry.subscription_entered("Enabled")
        return outcome

    def reconcile_settlements(self, account_id: str) -> list[SettlementOutcome]:
        return settle_balance.reconcile_settlements(self.payments, account_id)

    def run_retention(
        self,
        *,
        now: datetime,
        time_budget: timedelta,
        dry_run: bool = False,
        monotonic: Callable[[], float] | None = None,
    ) -> RetentionReport:
        extra = {"monotonic": monotonic} if monotonic is not None else {}
        with self.telemetry.use_case("run_retention"):
            report = retention.run_retention(self.retention, now=now, time_budget=time_budget, dry_run=dry_run, **extra)
        if not dry_run:
            self._count_actions(report.actions, now)
            for _ in range(report.emails_sent):
                self.telemetry.email_reported("sent")
            self.telemetry.record_backlog("due_entries", report.entries_due)
            self.telemetry.record_backlog("emails_retrying", report.emails_retrying)
        return report

    def start_retention_pass(self, now: datetime) -> PassStarted:
        with self.telemetry.use_case("start_retention_pass"):
            return retention_work.start_pass(self.retention_work, now)

    def sweep_retention_shard(self, sweep: ShardSweep) -> ShardSwept:
        with self.telemetry.use_case("sweep_retention_shard"):
            swept = retention_work.sweep_shard(self.retention_work, sweep)
        self.telemetry.record_backlog("due_entries", swept.entries_due)
        return swept

    def review_retention_batch(self, review: AccountReview) -> BatchReviewed:
        now = self.clock.now()
        with self.telemetry.use_case("review_retention_batch"):
            reviewed = retention_work.review_batch(self.retention_work, review, now=now)
        self._count_actions(reviewed.actions, now)
        for _ in range(reviewed.emails_sent):
            self.telemetry.email_reported("sent")
        return reviewed

    def set_aside_retention_work(
        self,
        *,
        body: bytes,
        reason: str,
        message_id: str | None,
        dequeue_count: int | None,
        pass_by_review: AccountReview | None = None,
    ) -> Rejection:
        """A work item that failed its last attempt (or is not one of ours): kept with its reason, re-submittable;
        the entries of `pass_by_review` stay due, marked, so later sweeps do not retry it for nothing."""
        rejection = rejections.record_rejection(
            self.rejections,
            body=body,
            reason=reason,
            at=self.clock.now(),
            event_type="retention.work",
            message_id=message_id,
            dequeue_count=dequeue_count,
            queue=RETENTION_WORK_QUEUE,
        )
        if pass_by_review is not None:
            retention_work.set_aside_review(self.retention_work, pass_by_review, rejection.id)
        return rejection

    def retention_housekeeping(self, item: Housekeeping) -> int:
        with self.telemetry.use_case("retention_housekeeping"):
            return retention_work.housekeeping(self.retention_work, item)

    def retention_backlog(self, now: datetime) -> Backlog:
        return backlog.read_backlog(self.due, now)

    def _count_actions(self, actions: Sequence[RetentionAction], now: datetime) -> None:
        for action in actions:
            if action.kind in _STATE_OF_ACTION:
                self.telemetry.subscription_entered(_STATE_OF_ACTION[action.kind])
            if action.milestone_at is not None:
                self.telemetry.lifecycle_lag((now - action.milestone_at).total_seconds())

    def deliver(self, account_id: str) -> DeliveryReport:
        return deliver(self.outbox, account_id)

    def record_rejection(
        self,
        *,
        body: bytes,
        reason: str,
        event_id: str | None = None,
        event_type: str | None = None,
        message_id: str | None = None,
        dequeue_count: int | None = None,
    ) -> Rejection:
        return rejections.record_rejection(
            self.rejections,
            body=body,
            reason=reason,
            at=self.clock.now(),
            event_id=event_id,
            event_type=event_type,
            message_id=message_id,
            dequeue_count=dequeue_count,
        )

    def list_rejections(self, status: RejectionStatus | None = None) -> list[Rejection]:
        return rejections.list_rejections(self.rejections, status)

    def get_rejection(self, identifier: str) -> Rejection | None:
        return rejections.get_rejection(self.rejections, identifier)

    def resubmit_rejection(self, identifier: str, send: MessageSender, *, force: bool = False) -> Rejection:
        return rejections.resubmit_rejection(self.rejections, identifier, send, self.clock.now(), force=force)

    def _forget_clock_offset(self) -> None:
        # A move made by this process reaches its own triggers at once, not after TEST_CLOCK_REFRESH.
        if isinstance(self.clock, OffsetClock):
            self.clock.forget()

    def read_test_clock(self) -> ClockReading:
        return clock_travel.read_clock(self.test_clock_store, self.wall_clock)

    def set_test_clock(self, at: datetime) -> ClockReading:
        reading = clock_travel.set_clock(self.test_clock_store, self.wall_clock, at)
        self._forget_clock_offset()
        return reading

    def advance_test_clock(self, by: timedelta) -> ClockReading:
        reading = clock_travel.advance_clock(self.test_clock_store, self.wall_clock, by)
        self._forget_clock_offset()
        return reading

    def reset_test_clock(self) -> ClockReading:
        reading = clock_travel.reset_clock(self.test_clock_store, self.wall_clock)
        self._forget_clock_offset()
        return reading


def email_sender(settings: Settings, clock: Clock, credential: TokenCredential | None = None) -> EmailSender:
    """ACS (by connection string, or by endpoint and the app's identity); without ACS, the local .eml outbox."""
    acs = connections.acs_email_sender(settings, credential)
    if acs is not None:
        return acs
    return OutboxEmailSender(settings.outbox_dir, settings.acs_sender_address, clock=clock.now)


def app_clock(settings: Settings, offsets: ClockOffsetStore, real: Clock) -> Clock:
    """Real time; with TEST_CLOCK_ENABLED, real time plus the stored test clock offset."""
    if not settings.test_clock_enabled:
        return real
    return OffsetClock(offsets.offset, real=real, refresh=TEST_CLOCK_REFRESH)


_TELEMETRY: list[Telemetry] = []


def telemetry() -> Telemetry:
    """The process's one set of instruments (creating several would register every metric twice)."""
    if not _TELEMETRY:
        _TELEMETRY.append(Telemetry())
    return _TELEMETRY[0]


def build(
    settings: Settings,
    *,
    clock: Clock | None = None,
    request_hook: Callable[[Any], None] | None = None,
    email: EmailSender | None = None,
    gateway: PaymentGateway | None = None,
    credential: TokenCredential | None = None,
    bounds: RequestBounds | None = None,
) -> Dependencies:
    """Real adapters for `settings`; tests and benchmarks pass their own clock, request hook, sender or credential.

    `bounds` limits how long each storage call may retry (None: the SDKs' own defaults).
    `clock` stands for real time; with TEST_CLOCK_ENABLED the use cases read the test clock on top of it.
    """
    dunning_policies(settings)  # a malformed DUNNING_POLICIES file stops the start, naming the file and the key
    real = clock or SystemClock()
    if credential is None and connections.needs_credential(settings):
        credential = connections.azure_credential(settings)
    access = connections.storage_access(settings)
    storage = connections.table_storage(access, credential, request_hook=request_hook, bounds=bounds)
    storage.ensure_tables()
    hook_options = {"raw_request_hook": request_hook} if request_hook else {}
    offsets = TableClockOffsetStore(storage)
    clock = app_clock(settings, offsets, real)
    return Dependencies(
        settings=settings,
        clock=clock,
        accounts=AccountStore(storage),
        due=TableDueIndex(storage, shards=settings.retention_shards),
        audit=TableAuditLog(storage),
        webhooks=TableWebhookLedger(storage, clock=real),
        rejections=TableRejectionStore(storage),
        gateway=gateway or SandboxGateway(storage, clock=clock),
        email=email or email_sender(settings, clock, credential),
        events=connections.lifecycle_publisher(
            access, settings.lifecycle_queue, credential, bounds=bounds, **hook_options
        ),
        messages=TableMessageIndex(storage),
        renderer=EmailRenderer(),
        telemetry=telemetry(),
        storage=storage,
        real_clock=real,
        clock_offsets=offsets,
        work_queue=connections.work_queue(access, RETENTION_WORK_QUEUE, credential, bounds=bounds, **hook_options),
    )


@functools.cache
def dependencies() -> Dependencies:
    """The process-wide dependencies, built on first use (Azure Functions reuses the worker between calls)."""
    settings = Settings.load()
    configure_telemetry(settings)
    return build(settings)


@functools.cache
def http_dependencies() -> Dependencies:
    """The process-wide dependencies of the HTTP functions: storage calls bounded, so an outage is a quick 503."""
    settings = Settings.load()
    configure_telemetry(settings)
    return build(settings, bounds=INTERACTIVE_BOUNDS)

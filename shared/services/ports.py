"""What the use cases need from the outside world, each as a small protocol named for what it gives them.

Every port has a real adapter (Table Storage, Storage Queues, ACS, the sandbox gateway) and an in-memory fake with
the same observable behaviour, conflicts included; one contract test suite runs against both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.domain.audit import DeletionRecord, HoldRecord, SnapshotDisagreement
from shared.domain.email import OutgoingEmail, RenderedEmail, SendOutcome
from shared.domain.money import Money
from shared.domain.outbox import LifecycleEvent
from shared.domain.partition import AccountPartition
from shared.domain.payments import ChargeResult
from shared.domain.rejection import Rejection
from shared.webhooks import VerifiedWebhook, WebhookDelivery


class AccountUnitOfWork(Protocol):
    """Reads an account partition whole and commits its staged changes, guarded by the version it was read at."""

    def load(self, account_id: str) -> AccountPartition:
        """Everything stored for the account (an empty partition if there is nothing)."""
        ...

    def commit(self, partition: AccountPartition) -> None:
        """Write the staged changes; raises ConcurrencyError if anyone else committed since `partition` was read."""
        ...


@dataclass(frozen=True)
class DueEntry:
    """When to look at an account again."""

    account_id: str
    due_at: datetime
    # Where the index keeps it, when read from the index (None: where the current shard count puts it).
    shard: int | None = field(default=None, compare=False)
    # The rejection id when its review was set aside after failing every attempt: sweeps pass it by until then.
    set_aside: str | None = field(default=None, compare=False)

    def same_row(self, other: DueEntry | None) -> bool:
        """The same stored entry: same account and moment, and the same shard where both know theirs."""
        if other is None or other != self:
            return False
        return self.shard is None or other.shard is None or self.shard == other.shard


@dataclass(frozen=True)
class ShardProgress:
    """What the latest review batch of one shard did: for the backlog's lag figures."""

    shard: int
    reviewed_at: datetime
    accounts: int
    max_lag_seconds: float
    mean_lag_seconds: float


def whole_second_up(moment: datetime) -> datetime:
    """Due times are kept to the second, rounded up: an entry never fires before its moment."""
    if moment.microsecond:
        return moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


class DueIndex(Protocol):
    def schedule(self, account_id: str, due_at: datetime) -> DueEntry:
        """Add an entry (to the second, rounded up); scheduling the same moment again changes nothing."""
        ...

    def schedule_many(self, entries: Iterable[DueEntry]) -> list[DueEntry]:
        """Add several entries as `schedule` does, in one write per shard (an account's entries share one)."""
        ...

    def due(self, now: datetime, *, page_size: int = ..., limit: int | None = None) -> Iterator[DueEntry]:
        """Entries due at or before `now`, oldest first."""
        ...

    def remove(self, entry: DueEntry) -> None:
        """Remove an entry; removing one that is gone is not an error."""
        ...

    def shards_to_sweep(self) -> int:
        """How many shards a pass must sweep: the configured count, or more while entries written under a larger
        count remain possible (the count only ever grows in the index's own record)."""
        ...

    def due_in_shard(self, shard: int, now: datetime, *, page_size: int = ...) -> Iterator[DueEntry]:
        """One shard's entries due at or before `now`, oldest first, set-aside ones included (marked)."""
        ...

    def set_aside(self, entries: Sequence[DueEntry], rejection_id: str) -> None:
        """Mark entries whose review failed every attempt: they stay due, and sweeps pass them by."""
        ...

    def record_progress(self, progress: ShardProgress) -> None:
        """Keep the latest review batch's figures of a shard (last writer wins)."""
        ...

    def progress(self) -> list[ShardProgress]:
        """The latest figures of every shard that has any."""
        ...


class WorkQueue(Protocol):
    """The retention work queue (`retention-work`): sweeps, review batches and housekeeping for any instance."""

    def send(self, body: bytes) -> None: ...


class AuditLog(Protocol):
    def record_deletion(self, record: DeletionRecord) -> bool:
        """Create the record unless it exists (the first one stands); True if this call wrote it."""
        ...

    def deletions(self, account_id: str) -> list[DeletionRecord]: ...

    def record_snapshot_disagreement(self, record: SnapshotDisagreement) -> bool:
        """Create the record unless one exists for its event (the first one stands); True if this call wrote it."""
        ...

    def snapshot_disagreements(self, account_id: str) -> list[SnapshotDisagreement]: ...

    def record_hold(self, record: HoldRecord) -> bool:
        """Create the record unless one exists for its account, action and moment; True if this call wrote it."""
        ...

    def holds(self, account_id: str) -> list[HoldRecord]:
        """Every hold record of one account, oldest first."""
        ...


class WebhookLedger(Protocol):
    def remember(self, webhook: VerifiedWebhook, fingerprint: str) -> WebhookDelivery:
        """FIRST for a new id, RETRY for the same request again; WebhookReplayError for another request."""
        ...

    def purge_expired(self, now: datetime) -> int:
        """Forget ids expired at `now`, never one its own clock has not seen expire: a run at a later moment (the
        test clock, `retention --at`) must not reopen the replay window of a call signed a minute ago."""
        ...


@dataclass(frozen=True)
class StoredRejection:
    """A rejection with the version token it was read at."""

    rejection: Rejection
    version: str


class RejectionStore(Protocol):
    def add(self, rejection: Rejection) -> Rejection:
        """Keep a new rejection; if one with its id exists, that one is returned and nothing changes."""
        ...

    def get(self, identifier: str) -> StoredRejection | None: ...

    def all(self) -> list[Rejection]: ...

    def replace(self, rejection: Rejection, version: str) -> bool:
        """Replace the stored rejection if it is still at `version`; False if someone changed it meanwhile."""
        ...


class PaymentGateway(Protocol):
    def charge(self, amount: Money, token: str, idempotency_key: str, *, account_id: str = "") -> ChargeResult:
        """Charge once per key; a repeat returns the first result (UNKNOWN only when no answer came in time).
        `account_id` names the customer at the gateway."""
        ...

    def lookup(self, idempotency_key: str) -> ChargeResult | None:
        """The outcome of the charge made with this key, or None if the gateway never saw it."""
        ...


class EmailSender(Protocol):
    """Delivers one email and reports the outcome instead of raising for delivery problems."""

    def send(self, email: OutgoingEmail) -> SendOutcome: ...


class EmailRenderer(Protocol):
    def render(self, template: str, locale: str, context: Mapping[str, object]) -> RenderedEmail:
        """Subject, text and HTML of one template; raises EmailRenderingError when it cannot."""
        ...


@dataclass(frozen=True)
class SentMessage:
    """Which account's notification an email that went out is: what a delivery report is mapped back by."""

    message_id: str
    account_id: str
    notification_id: str


class MessageIndex(Protocol):
    """From the id the mailer knows an email by to the notification it carries (a look-up across accounts)."""

    def remember(self, message: SentMessage) -> None:
        """Record the message; remembering it again changes nothing (the first record stands)."""
        ...

    def find(self, message_id: str) -> SentMessage | None: ...


@dataclass(frozen=True)
class PublishReport:
    """Which events went out and which did not (they stay pending, to be published again later)."""

    published: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    error: str | None = None


class LifecyclePublisher(Protocol):
    """Publishes lifecycle events and reports the outcome instead of raising for delivery problems."""

    def publish_batch(self, events: Sequence[LifecycleEvent]) -> PublishReport:
        """Publish `events` in order, as CloudEvents JSON batches; a failure leaves the rest of them unpublished."""
        ...


class MessageSender(Protocol):
    """Puts raw bytes back on the queue they came from (re-submitting a rejection)."""

    def __call__(self, body: bytes) -> object: ...


class ClockOffsetStore(Protocol):
    """The test clock (TEST_CLOCK_ENABLED): its offset from real time, kept where every instance reads it."""

    def offset(self) -> timedelta:
        """The stored offset; zero when none is set."""
        ...

    def set_offset(self, offset: timedelta) -> None: ...

    def shift(self, delta: timedelta) -> timedelta:
        """Add `delta` to the offset, without losing a concurrent change; returns the new offset."""
        ...

    def clear(self) -> None:
        """Back to real time; clearing when nothing is set is not an error."""
        ...

"""In-memory fakes of the ports, with the observable behaviour of the real adapters, conflicts included.

Stored models are kept as the `Data…` properties the Table Storage codec makes of them, so a load returns copies
independent of the store and of each other, and a model that would not survive Table Storage fails here too.
Version tokens play the part of ETags: every write of a row gives it a new one, and a write made with an old one
loses. tests/contract runs one suite against these fakes and the real adapters on Azurite.
"""

from __future__ import annotations

import functools
import hmac
import itertools
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel

from shared.adapters.lifecycle_queue import EVENT_SOURCE, pack_batches
from shared.bootstrap import Dependencies, app_clock, telemetry
from shared.domain.audit import DeletionRecord, HoldRecord, SnapshotDisagreement
from shared.domain.clock import Clock, SystemClock
from shared.domain.email import OutgoingEmail, SendOutcome, SendStatus
from shared.domain.errors import ConcurrencyError, TransientStorageError
from shared.domain.model import Account
from shared.domain.money import Money
from shared.domain.outbox import LifecycleEvent
from shared.domain.partition import ACCOUNT_ROW, AccountPartition, RowId
from shared.domain.payments import GATEWAY_TIMEOUT, ChargeOutcome, ChargeResult, GatewayKeyReuseError
from shared.domain.rejection import Rejection, is_rejection_id
from shared.email import EmailRenderer
from shared.services.ports import (
    AccountUnitOfWork,
    DueEntry,
    PublishReport,
    SentMessage,
    ShardProgress,
    StoredRejection,
    whole_second_up,
)
from shared.settings import Settings
from shared.storage.account_store import MAX_TRANSACTION_OPERATIONS
from shared.storage.codec import data_properties, decode
from shared.storage.due_index import DEFAULT_PAGE_SIZE
from shared.storage.layout import (
    DUE_SHARDS,
    account_row_key,
    deletion_row_key,
    due_shard_index,
    hold_row_key,
    snapshot_disagreement_row_key,
)
from shared.storage.sandbox_gateway import SANDBOX_TOKENS, sandbox_outcome
from shared.webhooks import MIN_LEDGER_RETENTION, VerifiedWebhook, WebhookDelivery, WebhookReplayError

_tokens = itertools.count(1)


def _new_version_token() -> str:
    return f'W/"memory-{next(_tokens)}"'


# --- accounts -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoredRow:
    kind: type[BaseModel]
    data: dict[str, str]
    etag: str
    version: int = 0  # kept on the account row only, as the `Version` property in Table Storage


@dataclass(frozen=True)
class _Operation:
    action: Literal["create", "update", "delete"]
    identity: RowId
    model: BaseModel | None = None
    etag: str | None = None


class MemoryAccountStore:
    """Account partitions in a dict, committed as AccountStore commits them: in transactions of at most 100 rows,
    the first guarded by the account row's version token, each row write by its own token."""

    def __init__(self) -> None:
        self._partitions: dict[str, dict[RowId, _StoredRow]] = {}
        self._lock = threading.Lock()
        self.loads = 0
        self.commits = 0

    def load(self, account_id: str) -> AccountPartition:
        with self._lock:
            self.loads += 1
            stored = dict(self._partitions.get(account_id, {}))
        partition = AccountPartition(account_id=account_id)
        for identity in sorted(stored, key=account_row_key):  # Table Storage returns rows in RowKey order
            row = stored[identity]
            model = decode(row.kind, row.data)
            partition.etags[identity] = row.etag
            if isinstance(model, Account):
                partition.account = model
                partition.version = row.version
            else:
                partition.rows[identity] = model
        return partition

    def commit(self, partition: AccountPartition) -> None:
        if not partition.has_changes:
            return
        if partition.account is None:
            raise ValueError("an account partition needs its account row before anything is written to it")
        operations = [_root_operation(partition), *_row_operations(partition)]
        etags: dict[RowId, str] = {}
        with self._lock:
            rows = self._partitions.setdefault(partition.account_id, {})
            for start in range(0, len(operations), MAX_TRANSACTION_OPERATIONS):
                chunk = operations[start : start + MAX_TRANSACTION_OPERATIONS]
                if any(_conflicts(rows, operation) for operation in chunk):
                    raise ConcurrencyError(f"account {partition.account_id} changed meanwhile")
                for operation in chunk:
                    etag = _apply(rows, operation, version=partition.version + 1)
                    if etag is not None:
                        etags[operation.identity] = etag
            self.commits += 1
        partition.mark_committed(etags)

    def rewrite_row(self, account_id: str, identity: RowId) -> None:
        """Another writer rewrites one row as it is, behind the account row's back: only its token changes."""
        with self._lock:
            rows = self._partitions[account_id]
            rows[identity] = _StoredRow(rows[identity].kind, rows[identity].data, _new_version_token())


def _root_operation(partition: AccountPartition) -> _Operation:
    if not partition.exists:
        return _Operation("create", ACCOUNT_ROW, partition.account)
    return _Operation("update", ACCOUNT_ROW, partition.account, partition.etags[ACCOUNT_ROW])


def _row_operations(partition: AccountPartition) -> Iterator[_Operation]:
    for identity, model in partition.staged():
        if identity == ACCOUNT_ROW:
            continue
        etag = partition.etags.get(identity)
        if model is None:
            if etag is not None:
                yield _Operation("delete", identity, etag=etag)
        elif etag is None:
            yield _Operation("create", identity, model)
        else:
            yield _Operation("update", identity, model, etag)


def _conflicts(rows: dict[RowId, _StoredRow], operation: _Operation) -> bool:
    current = rows.get(operation.identity)
    if operation.action == "create":
        return current is not None
    return current is None or current.etag != operation.etag


def _apply(rows: dict[RowId, _StoredRow], operation: _Operation, *, version: int) -> str | None:
    if operation.model is None:
        del rows[operation.identity]
        return None
    etag = _new_version_token()
    rows[operation.identity] = _StoredRow(
        type(operation.model),
        data_properties(operation.model),
        etag,
        version if operation.identity == ACCOUNT_ROW else 0,
    )
    return etag


# --- due index, audit log, webhook ledger, rejections ---------------------------------------------------------------


class MemoryWorkQueue:
    """The retention work queue as a list of bodies; `drain` runs them as the host would, until none are left."""

    def __init__(self) -> None:
        self.bodies: deque[bytes] = deque()
        self.sent = 0

    def send(self, body: bytes) -> None:
        self.bodies.append(body)
        self.sent += 1

    def take(self) -> list[bytes]:
        taken = list(self.bodies)
        self.bodies.clear()
        return taken


class MemoryDueIndex:
    """Due entries keyed to the second in UTC, as Table Storage keeps them, placed in shards by the same hash."""

    def __init__(self, shards: int = DUE_SHARDS) -> None:
        self._entries: dict[tuple[datetime, str], str | None] = {}  # -> the rejection id once set aside
        self._progress: dict[int, ShardProgress] = {}
        self._shards = shards
        self._lock = threading.Lock()

    def _entry(self, key: tuple[datetime, str], set_aside: str | None = None) -> DueEntry:
        due_at, account_id = key
        return DueEntry(account_id, due_at, shard=due_shard_index(account_id, self._shards), set_aside=set_aside)

    def schedule_entry(self, entry: DueEntry) -> DueEntry:
        return self._entry(_due_key(DueEntry(entry.account_id, whole_second_up(entry.due_at))))

    def schedule(self, account_id: str, due_at: datetime) -> DueEntry:
        entry = self.schedule_entry(DueEntry(account_id, due_at))
        with self._lock:
            self._entries[_due_key(entry)] = None
        return entry

    def schedule_many(self, entries: Iterable[DueEntry]) -> list[DueEntry]:
        by_key = {_due_key(e): e for e in (self.schedule_entry(e) for e in entries)}
        with self._lock:
            self._entries.update(dict.fromkeys(by_key))
        return list(by_key.values())

    def due(self, now: datetime, *, page_size: int = DEFAULT_PAGE_SIZE, limit: int | None = None) -> Iterator[DueEntry]:
        with self._lock:
            ready = sorted((key, mark) for key, mark in self._entries.items() if key[0] <= now)
        for key, mark in itertools.islice(ready, limit):
            yield self._entry(key, mark)

    def due_in_shard(self, shard: int, now: datetime, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[DueEntry]:
        return (entry for entry in self.due(now) if entry.shard == shard)

    def remove(self, entry: DueEntry) -> None:
        with self._lock:
            self._entries.pop(_due_key(entry), None)

    def shards_to_sweep(self) -> int:
        return self._shards

    def set_aside(self, entries: Sequence[DueEntry], rejection_id: str) -> None:
        with self._lock:
            for entry in entries:
                if _due_key(entry) in self._entries:
                    self._entries[_due_key(entry)] = rejection_id

    def record_progress(self, progress: ShardProgress) -> None:
        with self._lock:
            self._progress[progress.shard] = progress

    def progress(self) -> list[ShardProgress]:
        with self._lock:
            return list(self._progress.values())

    def __len__(self) -> int:
        return len(self._entries)


def _due_key(entry: DueEntry) -> tuple[datetime, str]:
    return entry.due_at.astimezone(UTC).replace(microsecond=0), entry.account_id


class MemoryAuditLog:
    """Deletion records keyed as in table `audit` (subscription and deletion time to the second); the first stands."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, dict[str, str]]] = {}
        self._disagreements: dict[str, dict[str, dict[str, str]]] = {}
        self._holds: dict[str, dict[str, dict[str, str]]] = {}
        self._lock = threading.Lock()

    def record_hold(self, record: HoldRecord) -> bool:
        key = hold_row_key(record.at, record.action.value)
        with self._lock:
            records = self._holds.setdefault(record.account_id, {})
            if key in records:
                return False
            records[key] = data_properties(record)
        return True

    def holds(self, account_id: str) -> list[HoldRecord]:
        with self._lock:
            records = dict(self._holds.get(account_id, {}))
        return [decode(HoldRecord, records[key]) for key in sorted(records)]

    def record_snapshot_disagreement(self, record: SnapshotDisagreement) -> bool:
        key = snapshot_disagreement_row_key(record.event_id)
        with self._lock:
            records = self._disagreements.setdefault(record.account_id, {})
            if key in records:
                return False
            records[key] = data_properties(record)
        return True

    def snapshot_disagreements(self, account_id: str) -> list[SnapshotDisagreement]:
        with self._lock:
            records = dict(self._disagreements.get(account_id, {}))
        return [decode(SnapshotDisagreement, records[key]) for key in sorted(records)]

    def record_deletion(self, record: DeletionRecord) -> bool:
        key = deletion_row_key(record.subscription_id, record.deleted_at)
        with self._lock:
            records = self._records.setdefault(record.account_id, {})
            if key in records:
                return False
            records[key] = data_properties(record)
        return True

    def deletions(self, account_id: str) -> list[DeletionRecord]:
        with self._lock:
            records = dict(self._records.get(account_id, {}))
        return [decode(DeletionRecord, records[key]) for key in sorted(records)]


class MemoryWebhookLedger:
    def __init__(self, *, clock: Clock, retention: timedelta = MIN_LEDGER_RETENTION) -> None:
        self._clock = clock
        self._retention = retention
        self._seen: dict[str, tuple[str, datetime]] = {}  # webhook id -> (request fingerprint, expiry)
        self._lock = threading.Lock()

    def remember(self, webhook: VerifiedWebhook, fingerprint: str) -> WebhookDelivery:
        now = self._clock.now()
        with self._lock:
            seen = self._seen.get(webhook.id)
            if seen is None:
                self._seen[webhook.id] = (fingerprint, now + max(self._retention, MIN_LEDGER_RETENTION))
                return WebhookDelivery.FIRST
        if not hmac.compare_digest(seen[0], fingerprint):
            raise WebhookReplayError("this webhook-id was already used for another request")
        return WebhookDelivery.RETRY

    def purge_expired(self, now: datetime) -> int:
        cutoff = min(now, self._clock.now())
        with self._lock:
            expired = [webhook_id for webhook_id, (_, expires_at) in self._seen.items() if expires_at < cutoff]
            for webhook_id in expired:
                del self._seen[webhook_id]
        return len(expired)


class MemoryClockOffsetStore:
    """The test clock's offset, kept as the table keeps it (seconds as a double)."""

    def __init__(self) -> None:
        self._seconds: float | None = None
        self._lock = threading.Lock()

    def offset(self) -> timedelta:
        with self._lock:
            return timedelta(seconds=self._seconds or 0.0)

    def set_offset(self, offset: timedelta) -> None:
        with self._lock:
            self._seconds = offset.total_seconds()

    def shift(self, delta: timedelta) -> timedelta:
        with self._lock:
            shifted = timedelta(seconds=self._seconds or 0.0) + delta
            self._seconds = shifted.total_seconds()
            return shifted

    def clear(self) -> None:
        with self._lock:
            self._seconds = None


class MemoryRejectionStore:
    def __init__(self) -> None:
        self._rows: dict[str, tuple[dict[str, str], str]] = {}  # id -> (data, version token)
        self._lock = threading.Lock()

    def add(self, rejection: Rejection) -> Rejection:
        with self._lock:
            existing = self._rows.get(rejection.id)
            if existing is not None:
                return decode(Rejection, existing[0])
            self._rows[rejection.id] = (data_properties(rejection), _new_version_token())
        return rejection

    def get(self, identifier: str) -> StoredRejection | None:
        if not is_rejection_id(identifier):
            return None
        with self._lock:
            row = self._rows.get(identifier)
        return None if row is None else StoredRejection(rejection=decode(Rejection, row[0]), version=row[1])

    def all(self) -> list[Rejection]:
        with self._lock:
            rows = dict(self._rows)
        return [decode(Rejection, rows[identifier][0]) for identifier in sorted(rows)]

    def replace(self, rejection: Rejection, version: str) -> bool:
        with self._lock:
            row = self._rows.get(rejection.id)
            if row is None:
                raise LookupError(f"no rejection {rejection.id!r} to replace")
            if row[1] != version:
                return False
            self._rows[rejection.id] = (data_properties(rejection), _new_version_token())
        return True


class MemoryMessageIndex:
    """Sent messages by id, as in table `sentemails`: the first record of a message id stands."""

    def __init__(self) -> None:
        self._messages: dict[str, SentMessage] = {}
        self._lock = threading.Lock()

    def remember(self, message: SentMessage) -> None:
        with self._lock:
            self._messages.setdefault(message.message_id, message)

    def find(self, message_id: str) -> SentMessage | None:
        with self._lock:
            return self._messages.get(message_id)


# --- gateway, email, lifecycle events -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _SandboxCharge:
    result: ChargeResult
    token: str
    account_id: str = ""


class MemorySandboxGateway:
    """The sandbox gateway (shared/storage/sandbox_gateway.py) with its ledger in a dict: same tokens, same answers."""

    def __init__(self) -> None:
        self._charges: dict[str, _SandboxCharge] = {}
        self._lock = threading.Lock()

    def charge(self, amount: Money, token: str, idempotency_key: str, *, account_id: str = "") -> ChargeResult:
        card = SANDBOX_TOKENS.get(token)
        with self._lock:
            earlier = self._charges.get(idempotency_key)
            if earlier is not None:
                if earlier.result.amount != amount or not hmac.compare_digest(earlier.token, token):
                    raise GatewayKeyReuseError("this idempotency key was used for another amount or card")
                return earlier.result
            before = sum(1 for c in self._charges.values() if c.token == token and c.account_id == account_id)
            result = sandbox_outcome(card, amount, idempotency_key, earlier_charges=before)
            self._charges[idempotency_key] = _SandboxCharge(result, token, account_id)
        if card is not None and card.times_out:
            return result.model_copy(update={"outcome": ChargeOutcome.UNKNOWN, "reason": GATEWAY_TIMEOUT})
        return result

    def lookup(self, idempotency_key: str) -> ChargeResult | None:
        with self._lock:
            charge = self._charges.get(idempotency_key)
        return None if charge is None else charge.result

    def ledger(self) -> list[ChargeResult]:
        with self._lock:
            return [charge.result for charge in self._charges.values()]


class MemoryEmailSender:
    """Delivers into a list. Like ACS, an operation id names one email: a repeat is answered sent and delivers
    nothing, while a request that was not accepted (throttled, refused) leaves the id free for a retry."""

    def __init__(self) -> None:
        self.attempts: list[OutgoingEmail] = []
        self._delivered: dict[str, OutgoingEmail] = {}
        self._answers: deque[SendOutcome] = deque()
        self._lock = threading.Lock()

    def answer_next(self, *outcomes: SendOutcome) -> None:
        """The next sends get these outcomes (throttling, an outage) instead of being delivered."""
        with self._lock:
            self._answers.extend(outcomes)

    def send(self, email: OutgoingEmail) -> SendOutcome:
        with self._lock:
            self.attempts.append(email)
            if email.operation_id in self._delivered:
                return SendOutcome.sent(email.operation_id)
            outcome = self._answers.popleft() if self._answers else SendOutcome.sent(email.operation_id)
            if outcome.status is SendStatus.SENT:
                self._delivered[email.operation_id] = email
        return outcome

    @property
    def sent(self) -> list[OutgoingEmail]:
        """The emails delivered, one per operation id, in the order they went out."""
        with self._lock:
            return list(self._delivered.values())


class MemoryLifecyclePublisher:
    """Records what was published, packed into messages as the queue adapter packs them; like the queue, publishing
    an event twice puts it there twice, and an event no message can hold is refused."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.events: list[LifecycleEvent] = []
        self._lock = threading.Lock()

    def publish_batch(self, events: Sequence[LifecycleEvent]) -> PublishReport:
        packing = pack_batches(events)
        with self._lock:
            for batch in packing.batches:
                self.messages.append(batch.body)
                self.events.extend(batch.events)
        refused = tuple(event.id for event in packing.oversized)
        return PublishReport(
            published=tuple(event.id for batch in packing.batches for event in batch.events),
            failed=refused,
            error=f"{len(refused)} event(s) larger than a queue message" if refused else None,
        )

    @property
    def cloudevents(self) -> list[dict[str, Any]]:
        """The events as the queue adapter sends them, taken out of their batches."""
        return [event.to_cloudevent(EVENT_SOURCE) for event in self.events]


# --- wrappers that make trouble -------------------------------------------------------------------------------------


class RacingAccounts:
    """An account unit of work where someone else gets in between a caller's read and its commit.

    Before each of the caller's first `races` commits that have changes, `interfere` runs: it commits on its own
    (through the unwrapped store, or a whole use case on unwrapped dependencies), so the caller's commit then meets
    a newer account row and must read again.
    """

    def __init__(self, accounts: AccountUnitOfWork, interfere: Callable[[], object], *, races: int = 1) -> None:
        self._accounts = accounts
        self._interfere = interfere
        self._races_left = races
        self.races = 0

    def load(self, account_id: str) -> AccountPartition:
        return self._accounts.load(account_id)

    def commit(self, partition: AccountPartition) -> None:
        if self._races_left > 0 and partition.has_changes:
            self._races_left -= 1
            self.races += 1
            self._interfere()
        self._accounts.commit(partition)


@dataclass(frozen=True)
class Fault:
    """The `call`-th call of `method` raises `error`: before reaching the port, or after it (`applied`): the change
    is made but the caller never hears so, as when a connection drops after the write."""

    method: str
    call: int = 1
    error: BaseException | type[BaseException] = field(default_factory=lambda: TransientStorageError("injected"))
    applied: bool = False


class FaultyPort:
    """Wraps any port and injects `faults`; every other call goes through unchanged. `calls` counts per method."""

    def __init__(self, port: object, *faults: Fault) -> None:
        self._port = port
        self._faults = faults
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._port, name)
        faults = [fault for fault in self._faults if fault.method == name]
        if not faults or not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            fault = next((f for f in faults if f.call == self.calls[name]), None)
            if fault is None:
                return attribute(*args, **kwargs)
            if fault.applied:
                attribute(*args, **kwargs)
            raise fault.error

        return call


# --- the composition root, in memory --------------------------------------------------------------------------------


@functools.cache
def _shared_renderer() -> EmailRenderer:
    # One renderer for every in-memory build: compiling the templates again per test would dominate its time.
    return EmailRenderer()


def build_in_memory(settings: Settings | None = None, clock: Clock | None = None) -> Dependencies:
    """Every port faked in memory, the real renderer and telemetry, and the use cases bound as `build()` binds them."""
    settings = settings or Settings()
    real = clock or SystemClock()
    offsets = MemoryClockOffsetStore()
    return Dependencies(
        settings=settings,
        clock=app_clock(settings, offsets, real),
        accounts=MemoryAccountStore(),
        due=MemoryDueIndex(),
        audit=MemoryAuditLog(),
        webhooks=MemoryWebhookLedger(clock=real),
        rejections=MemoryRejectionStore(),
        gateway=MemorySandboxGateway(),
        email=MemoryEmailSender(),
        events=MemoryLifecyclePublisher(),
        messages=MemoryMessageIndex(),
        renderer=_shared_renderer(),
        telemetry=telemetry(),
        storage=None,
        real_clock=real,
        clock_offsets=offsets,
        work_queue=MemoryWorkQueue(),
    )

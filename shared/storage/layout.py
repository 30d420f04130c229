"""Where everything lives in Table Storage: every table, its PartitionKey and its RowKey, in this one file.

| Table        | PartitionKey                                  | RowKey                                          |
|--------------|-----------------------------------------------|-------------------------------------------------|
| `accounts`   | account id                                    | `account` (root row), or `<prefix>:<row id>`    |
| `due`        | `due-NN` (hash of the account id, RETENTION_SHARDS) | `<UTC time YYYYMMDDTHHMMSSZ>\\|<account id>` |
|              | `meta`; `progress`                            | `shard-count`; `due-NN` (latest review figures) |
| `audit`      | account id                                    | `deleted:<subscription id>:<deleted at, UTC>`,  |
|              |                                               | or `snapshot-disagreed:<event id>`,             |
|              |                                               | or `hold:<at, UTC to the microsecond>:<action>` |
| `rejections` | `rejection`                                   | the rejection id (the queue message id)         |
| `webhooks`   | `wh-NN` (hash of the webhook id, 16 shards)   | SHA-256 of the webhook id                       |
| `gateway`    | `sandbox-charges`                             | SHA-256 of the gateway idempotency key          |
| `sentemails` | `msg-NN` (hash of the message id, 16 shards)  | SHA-256 of the message id (ACS message id)      |
| `testclock`  | `clock`                                       | `offset` (the test clock's one row)             |

`accounts`: one partition per billing account, so that everything that must change together changes in one
entity-group transaction; the root row carries a version that every write bumps with its ETag, which makes each
commit conflict with any concurrent one. Row prefixes are in ACCOUNT_ROW_PREFIXES.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel

from shared.domain.idempotency import IdempotencyRecord
from shared.domain.model import Account, Alert, Charge, PaymentMethod, ProcessedEvent, Subscription
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.partition import ACCOUNT_ROW, RowId, row_id
from shared.domain.retention_work import DEFAULT_SHARDS
from shared.domain.settlement import Settlement

ACCOUNTS_TABLE = "accounts"
DUE_TABLE = "due"
AUDIT_TABLE = "audit"
WEBHOOKS_TABLE = "webhooks"
GATEWAY_TABLE = "gateway"
REJECTIONS_TABLE = "rejections"
SENT_EMAILS_TABLE = "sentemails"
TEST_CLOCK_TABLE = "testclock"
ALL_TABLES = (
    ACCOUNTS_TABLE,
    DUE_TABLE,
    AUDIT_TABLE,
    REJECTIONS_TABLE,
    WEBHOOKS_TABLE,
    GATEWAY_TABLE,
    SENT_EMAILS_TABLE,
    TEST_CLOCK_TABLE,
)

# --- accounts ---------------------------------------------------------------------------------------------------

ROOT_ROW_KEY = "account"
ACCOUNT_ROW_PREFIXES: dict[type[BaseModel], str] = {
    PaymentMethod: "pm",
    Subscription: "sub",
    Charge: "chg",
    Alert: "alert",
    Notification: "ntf",
    LifecycleEvent: "out",
    ProcessedEvent: "evt",
    Settlement: "stl",
    IdempotencyRecord: "idem",
}
_KIND_BY_PREFIX = {prefix: kind for kind, prefix in ACCOUNT_ROW_PREFIXES.items()}


def account_row_key(identity: RowId) -> str:
    kind, identifier = identity
    if identity == ACCOUNT_ROW:
        return ROOT_ROW_KEY
    return f"{ACCOUNT_ROW_PREFIXES[kind]}:{identifier}"


def account_row_key_for(model: BaseModel) -> str:
    return account_row_key(row_id(model))


def account_row_identity(row_key: str) -> RowId:
    """The partition identity of a stored RowKey; an unknown prefix is an error (a row this code cannot read)."""
    if row_key == ROOT_ROW_KEY:
        return ACCOUNT_ROW
    prefix, _, identifier = row_key.partition(":")
    kind = _KIND_BY_PREFIX.get(prefix)
    if kind is None:
        raise ValueError(f"unknown row kind {prefix!r} in account partition")
    return (kind, identifier)


def account_row_kind(row_key: str) -> type[BaseModel]:
    return Account if row_key == ROOT_ROW_KEY else account_row_identity(row_key)[0]


# --- due ----------------------------------------------------------------------------------------------------------

DUE_SHARDS = DEFAULT_SHARDS  # RETENTION_SHARDS when not set
DUE_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
# Rows of table `due` beside the shards: the largest shard count ever used, and each shard's latest review figures.
DUE_META_PARTITION = "meta"
DUE_SHARD_COUNT_ROW = "shard-count"
DUE_PROGRESS_PARTITION = "progress"


def due_shard_index(account_id: str, shards: int = DUE_SHARDS) -> int:
    """The shard of an account's entries. Little-endian, so any power of two up to 256 keeps the first byte's
    residue: the placement of 8 shards is the one the index always had."""
    digest = hashlib.sha256(account_id.encode()).digest()
    return int.from_bytes(digest[:8], "little") % shards


def due_shard_of(account_id: str, shards: int = DUE_SHARDS) -> str:
    return due_shard(due_shard_index(account_id, shards))


def due_shard(index: int) -> str:
    return f"due-{index:02d}"


def due_row_key(account_id: str, due_at: datetime) -> str:
    return f"{due_at.astimezone(UTC).strftime(DUE_TIME_FORMAT)}|{account_id}"


def due_row_key_upper_bound(now: datetime) -> str:
    """The greatest RowKey of entries due at or before `now` ('~' sorts after every id character)."""
    return f"{now.astimezone(UTC).strftime(DUE_TIME_FORMAT)}|~"


def parse_due_row_key(row_key: str) -> tuple[str, datetime]:
    stamp, _, account_id = row_key.partition("|")
    return account_id, datetime.strptime(stamp, DUE_TIME_FORMAT).replace(tzinfo=UTC)


# --- audit --------------------------------------------------------------------------------------------------------

AUDIT_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
DELETION_KIND = "subscription.deleted"


SNAPSHOT_DISAGREED_KIND = "snapshot.disagreed"
HOLD_KIND = "account.hold"
_HOLD_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def deletion_row_key(subscription_id: str, deleted_at: datetime) -> str:
    return f"deleted:{subscription_id}:{deleted_at.astimezone(UTC).strftime(AUDIT_TIME_FORMAT)}"


def snapshot_disagreement_row_key(event_id: str) -> str:
    """One record per event: a redelivery of the same event finds it and writes nothing."""
    return f"snapshot-disagreed:{event_id}"


def hold_row_key(at: datetime, action: str) -> str:
    """Time first, so an account's hold records sort oldest first; the action tells a set from a release at once."""
    return f"hold:{at.astimezone(UTC).strftime(_HOLD_TIME_FORMAT)}:{action}"


# --- rejections ---------------------------------------------------------------------------------------------------

REJECTIONS_PARTITION = "rejection"

# --- webhooks -----------------------------------------------------------------------------------------------------

WEBHOOK_SHARDS = 16


def webhook_keys(webhook_id: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of a webhook id: hashed, so any id the portal sends is a valid key."""
    key = hashlib.sha256(webhook_id.encode()).hexdigest()
    return f"wh-{int(key[:4], 16) % WEBHOOK_SHARDS:02d}", key


# --- gateway ------------------------------------------------------------------------------------------------------

GATEWAY_PARTITION = "sandbox-charges"


def gateway_row_key(idempotency_key: str) -> str:
    return hashlib.sha256(idempotency_key.encode()).hexdigest()


# --- sentemails ---------------------------------------------------------------------------------------------------

MESSAGE_SHARDS = 16


def message_keys(message_id: str) -> tuple[str, str]:
    """(PartitionKey, RowKey) of a sent email's message id: hashed, so any id the mailer gives is a valid key."""
    key = hashlib.sha256(message_id.encode()).hexdigest()
    return f"msg-{int(key[:4], 16) % MESSAGE_SHARDS:02d}", key


# --- testclock ----------------------------------------------------------------------------------------------------

TEST_CLOCK_PARTITION = "clock"
TEST_CLOCK_ROW = "offset"

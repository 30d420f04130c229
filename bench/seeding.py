"""Test data at benchmark scale: payment events, past-due accounts, plain accounts and due-index entries."""

from __future__ import annotations

import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError
from azure.data.tables import TableTransactionError

from shared.domain.errors import ConcurrencyError, TransientStorageError
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    Alert,
    AlertKind,
    Charge,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.partition import AccountPartition
from shared.domain.retention_policy import RetentionPolicy, next_review_at
from shared.services.ports import AccountUnitOfWork, DueEntry, whole_second_up
from shared.storage.account_store import to_entity
from shared.storage.due_index import due_entity_keys
from shared.storage.layout import ACCOUNTS_TABLE, DUE_TABLE
from shared.storage.tables import TableStorage

ADMIN = "admin-bench"
CARD = "pm-card-4242"
CHARGE_AMOUNT = Money.parse("10.00", "EUR")
SEED_WORKERS = 16
MAX_BATCH = 100


def new_account_id(prefix: str = "acc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def account(account_id: str) -> Account:
    return Account(
        id=account_id,
        admin_principal_id=ADMIN,
        notification_email="billing@contoso.example",
        locale="en-US",
        currency="EUR",
    )


def payment_failed_document(
    account_id: str, *, event_id: str | None = None, subscriptions: int = 2, charged: int = 1, when: str = "2026-11-24"
) -> dict[str, Any]:
    """A `payment.failed` CloudEvent: `subscriptions` share the failed card, the first `charged` of them owe 10.00."""
    subscription_ids = [f"sub-{n:04d}" for n in range(1, subscriptions + 1)]
    return {
        "specversion": "1.0",
        "id": event_id or f"evt-{uuid.uuid4().hex}",
        "type": "payment.failed",
        "source": "/billing-engine",
        "time": f"{when}T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "account": {
                "id": account_id,
                "adminPrincipalId": ADMIN,
                "notificationEmail": "billing@contoso.example",
                "locale": "en-US",
                "currency": "EUR",
            },
            "paymentMethod": {"id": CARD, "kind": "card", "brand": "visa", "last4": "4242"},
            "reason": "insufficient_funds",
            "charges": [
                {
                    "invoiceId": f"inv-{subscription_id}",
                    "subscriptionId": subscription_id,
                    "service": "Azure",
                    "amount": CHARGE_AMOUNT.amount,
                    "currency": "EUR",
                    "dueDate": when,
                }
                for subscription_id in subscription_ids[:charged]
            ],
            "subscriptions": [
                {"id": subscription_id, "name": f"Workload {subscription_id}", "service": "Azure"}
                for subscription_id in subscription_ids
            ],
        },
    }


def past_due_partition(account_id: str, *, subscriptions: int, failed_at: datetime) -> AccountPartition:
    """An account whose card failed at `failed_at`: every subscription PastDue and owing 10.00 on it."""
    partition = AccountPartition(account_id=account_id)
    partition.set_account(account(account_id))
    card = PaymentMethod(
        id=CARD, kind=PaymentMethodKind.CARD, brand="visa", last4="4242", gateway_token="tok_visa"
    ).mark_failed(DeclineReason.INSUFFICIENT_FUNDS, failed_at)
    partition.put(card)
    subscription_ids = []
    for n in range(1, subscriptions + 1):
        subscription = Subscription(
            id=f"sub-{n:04d}", name=f"Workload {n}", service="Azure", payment_method_id=CARD
        ).transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, failed_at)
        subscription_ids.append(subscription.id)
        partition.put(
            subscription,
            Charge(
                invoice_id=f"inv-{n:04d}",
                subscription_id=subscription.id,
                service="Azure",
                amount=CHARGE_AMOUNT,
                due_date=date(failed_at.year, failed_at.month, failed_at.day),
                payment_method_id=CARD,
            ),
        )
    partition.put(
        Alert(
            id=f"payment-failed:{CARD}",
            kind=AlertKind.PAYMENT_FAILED,
            payment_method_id=CARD,
            subscription_ids=tuple(subscription_ids),
            created_at=failed_at,
        )
    )
    return partition


def balance_of(subscriptions: int) -> Money:
    return Money(minor=CHARGE_AMOUNT.minor * subscriptions, currency=CHARGE_AMOUNT.currency)


def with_retries(write: Callable[[], object], attempts: int = 4) -> None:
    """Run one seeding write again after a dropped connection (Azurite closes idle keep-alive connections, and a
    POST that meets a closed one is not retried by the SDK); a conflict on a retry means the first attempt landed."""
    for attempt in range(1, attempts + 1):
        try:
            write()
        except (ConcurrencyError, ResourceExistsError, TableTransactionError) as error:
            if attempt > 1 and _conflict(error):
                return
            raise
        except (TransientStorageError, AzureError):
            if attempt == attempts:
                raise
            continue
        return


def _conflict(error: Exception) -> bool:
    if isinstance(error, TableTransactionError):
        return error.status_code == 409
    return True


def commit_all(store: AccountUnitOfWork, partitions: Iterable[AccountPartition], workers: int = SEED_WORKERS) -> int:
    """Write fresh partitions in parallel (one or more transactions each); returns how many."""

    def commit(partition: AccountPartition) -> None:
        with_retries(lambda: store.commit(partition))

    with ThreadPoolExecutor(workers) as pool:
        return sum(1 for _ in pool.map(commit, partitions))


def seed_plain_accounts(storage: TableStorage, prefix: str, start: int, count: int) -> None:
    """Accounts with nothing past due and nothing on the due index: one root row each, written in parallel."""
    table = storage.table(ACCOUNTS_TABLE)

    def create(index: int) -> None:
        account_id = f"{prefix}-{index:07d}"
        with_retries(lambda: table.create_entity(to_entity(account_id, account(account_id), Version=1)))

    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        list(pool.map(create, range(start, start + count)))


def seed_due_accounts(
    storage: TableStorage,
    store: AccountUnitOfWork,
    account_ids: Sequence[str],
    *,
    failed_at: datetime,
    policy: RetentionPolicy,
) -> datetime:
    """Past-due accounts with their first review on the due index (entries written 100 per transaction)."""
    partitions = [past_due_partition(a, subscriptions=1, failed_at=failed_at) for a in account_ids]
    review_at = next_review_at(partitions[0].subscriptions, policy, failed_at)
    assert review_at is not None
    commit_all(store, partitions)
    write_due_entries(storage, [DueEntry(a, whole_second_up(review_at)) for a in account_ids])
    return review_at


def write_due_entries(storage: TableStorage, entries: Iterable[DueEntry]) -> None:
    table = storage.table(DUE_TABLE)
    by_shard: dict[str, list[DueEntry]] = defaultdict(list)
    for entry in entries:
        by_shard[due_entity_keys(entry)[0]].append(entry)
    batches = [
        [("upsert", dict(zip(("PartitionKey", "RowKey"), due_entity_keys(e), strict=True))) for e in chunk]
        for shard_entries in by_shard.values()
        for chunk in _chunks(shard_entries, MAX_BATCH)
    ]
    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        list(pool.map(lambda batch: with_retries(lambda: table.submit_transaction(batch)), batches))


def _chunks(items: Sequence[DueEntry], size: int) -> Iterable[Sequence[DueEntry]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from azure.data.tables import TableClient

from shared.domain.errors import ConcurrencyError
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    Alert,
    AlertKind,
    Charge,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    ProcessedEvent,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.partition import AccountPartition
from shared.domain.settlement import Settlement
from shared.services.unit_of_work import with_fresh_partition
from shared.storage.account_store import AccountStore
from shared.storage.layout import ACCOUNTS_TABLE
from shared.storage.tables import RequestCounter, TableStorage

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def account(account_id: str) -> Account:
    return Account(
        id=account_id,
        admin_principal_id="user-7",
        notification_email="billing@contoso.example",
        locale="nl-NL",
        currency="EUR",
    )


def one_of_every_kind(account_id: str) -> list[object]:
    return [
        PaymentMethod(id="pm-visa-4242", kind=PaymentMethodKind.CARD, brand="visa", last4="4242").mark_failed(
            DeclineReason.EXPIRED_CARD, AT
        ),
        Subscription(id="sub-a", name="Production", service="Azure", payment_method_id="pm-visa-4242").transition(
            SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, AT
        ),
        Charge(
            invoice_id="inv-1",
            subscription_id="sub-a",
            service="Azure",
            amount=Money.parse("49.95", "EUR"),
            due_date=date(2026, 11, 20),
            payment_method_id="pm-visa-4242",
        ),
        Alert(id="pf-pm-visa-4242", kind=AlertKind.PAYMENT_FAILED, subscription_ids=("sub-a",), created_at=AT),
        Notification(
            id="payment_failed-evt-1",
            template="payment_failed",
            locale="nl-NL",
            to_address="billing@contoso.example",
            context={"total": "49.95", "subscriptions": ["Production"]},
            created_at=AT,
            next_attempt_at=AT,
        ),
        LifecycleEvent(id="evt-out-1", type="subscription.disabled", subject="sub-a", time=AT, data={"a": 1}),
        ProcessedEvent(event_id="evt-1", event_type="payment.failed", payload_hash="abc", processed_at=AT),
        Settlement(
            id="stl-1",
            subscription_id="sub-a",
            failed_payment_method_id="pm-visa-4242",
            payment_method_id="pm-visa-4242",
            payment_method_kind=PaymentMethodKind.CARD,
            invoice_ids=("inv-1",),
            total=Money.parse("49.95", "EUR"),
            created_at=AT,
        ),
    ]


def test_every_entity_kind_round_trips_through_table_storage(store: AccountStore, account_id: str) -> None:
    partition = store.load(account_id)
    partition.set_account(account(account_id))
    rows = one_of_every_kind(account_id)
    partition.put(*rows)  # type: ignore[arg-type]
    store.commit(partition)

    reloaded = store.load(account_id)

    assert reloaded.account == account(account_id)
    assert sorted(reloaded.rows.values(), key=repr) == sorted(rows, key=repr)
    assert reloaded.version == 1


def test_a_whole_partition_is_read_in_one_round_trip_and_written_in_one_transaction(
    store: AccountStore, account_id: str, request_counter: RequestCounter
) -> None:
    partition = store.load(account_id)
    partition.set_account(account(account_id))
    partition.put(*one_of_every_kind(account_id))  # type: ignore[arg-type]
    request_counter.reset()

    store.commit(partition)
    writes = request_counter.reset()
    store.load(account_id)
    reads = request_counter.reset()

    assert (writes, reads) == (1, 1)


def test_more_than_a_hundred_changes_go_out_in_batches_of_a_hundred(
    store: AccountStore, account_id: str, request_counter: RequestCounter
) -> None:
    partition = store.load(account_id)
    partition.set_account(account(account_id))
    partition.put(
        *(Subscription(id=f"sub-{n:03d}", name=f"S{n}", service="Azure", payment_method_id="pm") for n in range(250))
    )
    request_counter.reset()

    store.commit(partition)

    assert request_counter.reset() == 3  # 251 operations: 100 + 100 + 51
    assert len(store.load(account_id).subscriptions) == 250


def test_a_writer_that_read_before_another_commit_loses_the_race(store: AccountStore, account_id: str) -> None:
    seed = store.load(account_id)
    seed.set_account(account(account_id))
    seed.put(Subscription(id="sub-a", name="A", service="Azure", payment_method_id="pm"))
    store.commit(seed)
    first, second = store.load(account_id), store.load(account_id)

    first.put(first.subscriptions[0].switch_payment_method("pm-first"))
    store.commit(first)
    # The second writer changes a different row, yet its stale root ETag still makes it lose.
    second.put(Alert(id="alert-x", kind=AlertKind.REMINDER, created_at=AT))

    with pytest.raises(ConcurrencyError):
        store.commit(second)
    reloaded = store.load(account_id)
    assert reloaded.subscriptions[0].payment_method_id == "pm-first"
    assert reloaded.alerts == []


def test_two_writers_creating_the_same_new_account_cannot_both_win(store: AccountStore, account_id: str) -> None:
    first, second = store.load(account_id), store.load(account_id)
    first.set_account(account(account_id))
    second.set_account(account(account_id).model_copy(update={"locale": "en-US"}))

    store.commit(first)
    with pytest.raises(ConcurrencyError):
        store.commit(second)
    assert store.load(account_id).account == account(account_id)


def test_a_failed_transaction_writes_nothing_at_all(
    store: AccountStore, table_storage: TableStorage, account_id: str
) -> None:
    seed = store.load(account_id)
    seed.set_account(account(account_id))
    seed.put(Subscription(id="sub-a", name="A", service="Azure", payment_method_id="pm"))
    store.commit(seed)
    stale = store.load(account_id)
    # Someone else changes the subscription row directly, behind the root row's back.
    table: TableClient = table_storage.table(ACCOUNTS_TABLE)
    row = table.get_entity(account_id, "sub:sub-a")
    table.update_entity(row)

    stale.put(stale.subscriptions[0].switch_payment_method("pm-2"))
    stale.put(Alert(id="alert-1", kind=AlertKind.REMINDER, created_at=AT))
    with pytest.raises(ConcurrencyError):
        store.commit(stale)

    reloaded = store.load(account_id)
    assert reloaded.version == 1
    assert reloaded.alerts == []
    assert reloaded.subscriptions[0].payment_method_id == "pm"


def test_deletes_and_unchanged_rows_cost_only_what_changed(
    store: AccountStore, account_id: str, request_counter: RequestCounter
) -> None:
    seed = store.load(account_id)
    seed.set_account(account(account_id))
    seed.put(*one_of_every_kind(account_id))  # type: ignore[arg-type]
    store.commit(seed)
    partition = store.load(account_id)
    partition.put(*partition.rows.values())  # nothing changed
    assert not partition.has_changes

    partition.delete(*partition.alerts)
    store.commit(partition)

    assert store.load(account_id).alerts == []


def test_with_fresh_partition_redoes_the_change_after_a_lost_race(store: AccountStore, account_id: str) -> None:
    seed = store.load(account_id)
    seed.set_account(account(account_id))
    store.commit(seed)
    attempts: list[int] = []

    def add_alert(partition: AccountPartition) -> str:
        attempts.append(partition.version)
        if len(attempts) == 1:  # a concurrent writer commits between our read and our write
            rival = store.load(account_id)
            rival.put(Alert(id="rival", kind=AlertKind.REMINDER, created_at=AT))
            store.commit(rival)
        partition.put(Alert(id="mine", kind=AlertKind.REMINDER, created_at=AT))
        return "done"

    assert with_fresh_partition(store, account_id, add_alert) == "done"
    assert attempts == [1, 2]
    assert {alert.id for alert in store.load(account_id).alerts} == {"rival", "mine"}


def test_a_large_row_spills_over_several_properties_and_comes_back_whole(store: AccountStore, account_id: str) -> None:
    partition = store.load(account_id)
    partition.set_account(account(account_id))
    big = Notification(
        id="big",
        template="payment_failed",
        locale="en-US",
        to_address="billing@contoso.example",
        context={"subscriptions": [f"Subscription number {n} with a long name" for n in range(3000)]},
        created_at=AT,
        next_attempt_at=AT,
    )
    partition.put(big)
    store.commit(partition)

    assert store.load(account_id).get(Notification, "big") == big


def test_processed_markers_older_than_the_replay_window_go_when_a_new_one_is_recorded(
    store: AccountStore, account_id: str
) -> None:
    partition = store.load(account_id)
    partition.set_account(account(account_id))
    old = ProcessedEvent(event_id="evt-old", event_type="payment.failed", payload_hash="a", processed_at=AT)
    recent = old.model_copy(update={"event_id": "evt-recent", "processed_at": AT + timedelta(days=20)})
    partition.put(old, recent)
    store.commit(partition)

    partition = store.load(account_id)
    partition.record_processed(old.model_copy(update={"event_id": "evt-new", "processed_at": AT + timedelta(days=31)}))
    store.commit(partition)

    reloaded = store.load(account_id)
    assert {m.event_id for m in reloaded.all(ProcessedEvent)} == {"evt-recent", "evt-new"}

"""One contract for every storage port, held by the in-memory fake and by the Table Storage adapter alike.

Each test runs twice (see conftest.py): `[memory]` on tests/fakes, `[azurite]` on shared/storage against Azurite.
A fake that drifts from the adapter fails here, not in a service test that happens to rely on the difference.
"""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import BaseModel

from shared.domain.audit import AuditedCharge, DeletionRecord, HoldAction, HoldRecord, SnapshotDisagreement
from shared.domain.clock import FixedClock
from shared.domain.errors import ConcurrencyError
from shared.domain.idempotency import IdempotencyRecord
from shared.domain.lifecycle import SubscriptionState, TransitionReason
from shared.domain.model import (
    Account,
    AccountField,
    Alert,
    AlertKind,
    Charge,
    ChargeStatus,
    CollectionHold,
    DeclineReason,
    PaymentMethod,
    PaymentMethodKind,
    ProcessedEvent,
    Subscription,
)
from shared.domain.money import Money
from shared.domain.outbox import LifecycleEvent, Notification
from shared.domain.partition import ACCOUNT_ROW, AccountPartition, row_id
from shared.domain.payments import ChargeOutcome, GatewayKeyReuseError
from shared.domain.rejection import Rejection, RejectionStatus
from shared.domain.settlement import Settlement
from shared.services.ports import DueEntry, SentMessage, ShardProgress
from shared.services.unit_of_work import with_fresh_partition
from shared.storage.layout import DUE_SHARDS
from shared.webhooks import VerifiedWebhook, WebhookDelivery, WebhookReplayError, request_fingerprint

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def new_id(prefix: str = "acc") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def account(account_id: str, locale: str = "nl-NL") -> Account:
    return Account(
        id=account_id,
        admin_principal_id="user-7",
        notification_email="billing@contoso.example",
        locale=locale,
        currency="EUR",
    )


def subscription(subscription_id: str, method: str = "pm-visa-4242") -> Subscription:
    return Subscription(id=subscription_id, name=subscription_id.upper(), service="Azure", payment_method_id=method)


def alert(alert_id: str) -> Alert:
    return Alert(id=alert_id, kind=AlertKind.REMINDER, created_at=AT)


def one_of_every_kind() -> list[BaseModel]:
    return [
        PaymentMethod(id="pm-visa-4242", kind=PaymentMethodKind.CARD, brand="visa", last4="4242").mark_failed(
            DeclineReason.EXPIRED_CARD, AT
        ),
        subscription("sub-a").transition(SubscriptionState.PAST_DUE, TransitionReason.PAYMENT_FAILED, AT),
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
        IdempotencyRecord(settlement_id="stl-1", payload_hash="def", created_at=AT),
    ]


def seed(backend: Any, *rows: BaseModel) -> str:
    account_id = new_id()
    partition = backend.accounts.load(account_id)
    partition.set_account(account(account_id))
    partition.put(*rows)
    backend.accounts.commit(partition)
    return account_id


# --- the account unit of work ---------------------------------------------------------------------------------------


def test_an_account_never_written_loads_as_an_empty_partition(backend: Any) -> None:
    partition = backend.accounts.load(new_id())

    assert (partition.exists, partition.account, partition.version, partition.rows) == (False, None, 0, {})


def test_every_kind_of_row_comes_back_as_it_was_written(backend: Any) -> None:
    rows = one_of_every_kind()
    account_id = seed(backend, *rows)

    reloaded = backend.accounts.load(account_id)

    assert reloaded.account == account(account_id)
    assert reloaded.version == 1
    assert reloaded.rows == {row_id(row): row for row in rows}
    assert set(reloaded.etags) == {ACCOUNT_ROW, *(row_id(row) for row in rows)}


def test_rows_come_back_in_the_order_of_their_keys(backend: Any) -> None:
    account_id = seed(backend, subscription("sub-c"), alert("alert-2"), subscription("sub-a"), alert("alert-1"))

    reloaded = backend.accounts.load(account_id)

    assert [s.id for s in reloaded.subscriptions] == ["sub-a", "sub-c"]
    assert [a.id for a in reloaded.alerts] == ["alert-1", "alert-2"]


def test_each_load_is_a_copy_that_shares_nothing_with_the_store_or_other_loads(backend: Any) -> None:
    account_id = seed(backend, *one_of_every_kind())
    first = backend.accounts.load(account_id)
    notification = first.get(Notification, "payment_failed-evt-1")
    assert notification is not None

    notification.context["total"] = "0.00"  # frozen models still hold mutable dicts
    first.rows.clear()
    first.etags.clear()

    second = backend.accounts.load(account_id)
    reloaded = second.get(Notification, "payment_failed-evt-1")
    assert reloaded is not None
    assert reloaded.context["total"] == "49.95"
    assert len(second.rows) == len(one_of_every_kind())


def test_every_commit_bumps_the_version_and_gives_each_written_row_a_new_token(backend: Any) -> None:
    account_id = seed(backend, subscription("sub-a"), alert("alert-1"))
    partition = backend.accounts.load(account_id)
    before = dict(partition.etags)
    changed = partition.subscriptions[0].switch_payment_method("pm-other")

    partition.put(changed)
    backend.accounts.commit(partition)

    reloaded = backend.accounts.load(account_id)
    assert reloaded.version == 2
    assert reloaded.etags[ACCOUNT_ROW] != before[ACCOUNT_ROW]
    assert reloaded.etags[row_id(changed)] != before[row_id(changed)]
    assert reloaded.etags[row_id(alert("alert-1"))] == before[row_id(alert("alert-1"))]
    assert partition.etags == reloaded.etags  # the committed partition knows its new tokens
    assert partition.version == reloaded.version
    assert not partition.has_changes


def test_a_committed_partition_can_be_changed_and_committed_again_without_a_new_read(backend: Any) -> None:
    account_id = seed(backend, subscription("sub-a"))
    partition = backend.accounts.load(account_id)
    partition.put(partition.subscriptions[0].switch_payment_method("pm-2"))
    backend.accounts.commit(partition)

    partition.put(partition.subscriptions[0].switch_payment_method("pm-3"), alert("alert-1"))
    backend.accounts.commit(partition)

    reloaded = backend.accounts.load(account_id)
    assert (reloaded.version, reloaded.subscriptions[0].payment_method_id) == (3, "pm-3")
    assert [a.id for a in reloaded.alerts] == ["alert-1"]


def test_of_two_writers_that_read_the_same_version_the_first_to_commit_wins(backend: Any) -> None:
    account_id = seed(backend, subscription("sub-a"))
    first, second = backend.accounts.load(account_id), backend.accounts.load(account_id)

    first.put(first.subscriptions[0].switch_payment_method("pm-first"))
    backend.accounts.commit(first)
    # The second writer changes another row, yet its stale account-row token alone makes it lose.
    second.put(alert("alert-x"))

    with pytest.raises(ConcurrencyError):
        backend.accounts.commit(second)
    reloaded = backend.accounts.load(account_id)
    assert reloaded.version == 2
    assert reloaded.subscriptions[0].payment_method_id == "pm-first"
    assert reloaded.alerts == []


def test_two_writers_creating_the_same_new_account_cannot_both_win(backend: Any) -> None:
    account_id = new_id()
    first, second = backend.accounts.load(account_id), backend.accounts.load(account_id)
    first.set_account(account(account_id))
    second.set_account(account(account_id, locale="en-US"))

    backend.accounts.commit(first)
    with pytest.raises(ConcurrencyError):
        backend.accounts.commit(second)

    assert backend.accounts.load(account_id).account == account(account_id)


def test_a_row_rewritten_behind_the_account_rows_back_fails_the_commit_and_nothing_is_written(backend: Any) -> None:
    account_id = seed(backend, subscription("sub-a"))
    stale = backend.accounts.load(account_id)
    backend.rewrite_account_row(account_id, row_id(subscription("sub-a")))

    stale.put(stale.subscriptions[0].switch_payment_method("pm-2"), alert("alert-1"))
    with pytest.raises(ConcurrencyError):
        backend.accounts.commit(stale)

    reloaded = backend.accounts.load(account_id)
    assert reloaded.version == 1
    assert reloaded.alerts == []
    assert reloaded.subscriptions[0].payment_method_id == "pm-visa-4242"


def test_more_than_a_hundred_staged_rows_are_all_committed(backend: Any) -> None:
    account_id = new_id()
    partition = backend.accounts.load(account_id)
    partition.set_account(account(account_id))
    partition.put(*(subscription(f"sub-{n:03d}") for n in range(250)))

    backend.accounts.commit(partition)

    reloaded = backend.accounts.load(account_id)
    assert [s.id for s in reloaded.subscriptions] == [f"sub-{n:03d}" for n in range(250)]
    assert reloaded.version == 1
    assert partition.etags == reloaded.etags


def test_deleted_rows_are_gone_and_a_row_deleted_before_it_was_ever_stored_costs_nothing(backend: Any) -> None:
    account_id = seed(backend, subscription("sub-a"), alert("alert-1"), alert("alert-2"))
    partition = backend.accounts.load(account_id)
    never_stored = alert("alert-3")
    partition.put(never_stored)

    partition.delete(*partition.alerts)
    backend.accounts.commit(partition)

    reloaded = backend.accounts.load(account_id)
    assert reloaded.alerts == []
    assert [s.id for s in reloaded.subscriptions] == ["sub-a"]
    assert set(reloaded.etags) == {ACCOUNT_ROW, row_id(subscription("sub-a"))}
    assert partition.etags == reloaded.etags


def test_a_partition_without_changes_writes_nothing(backend: Any) -> None:
    account_id = seed(backend, subscription("sub-a"))
    partition = backend.accounts.load(account_id)
    partition.put(*partition.rows.values())  # the same rows again are no change

    backend.accounts.commit(partition)

    reloaded = backend.accounts.load(account_id)
    assert (reloaded.version, reloaded.etags) == (1, partition.etags)


def test_rows_without_their_account_row_are_refused(backend: Any) -> None:
    partition = backend.accounts.load(new_id())
    partition.put(subscription("sub-a"))

    with pytest.raises(ValueError, match="account row"):
        backend.accounts.commit(partition)
    assert backend.accounts.load(partition.account_id).rows == {}


def test_a_change_that_lost_a_race_is_redone_on_a_fresh_read(backend: Any) -> None:
    account_id = seed(backend)
    seen_versions: list[int] = []

    def add_alert(partition: AccountPartition) -> str:
        seen_versions.append(partition.version)
        if len(seen_versions) == 1:  # a concurrent writer commits between our read and our write
            rival = backend.accounts.load(account_id)
            rival.put(alert("rival"))
            backend.accounts.commit(rival)
        partition.put(alert("mine"))
        return "done"

    assert with_fresh_partition(backend.accounts, account_id, add_alert) == "done"
    assert seen_versions == [1, 2]
    assert [a.id for a in backend.accounts.load(account_id).alerts] == ["mine", "rival"]


# --- the due index --------------------------------------------------------------------------------------------------

DUE_NOW = datetime(2026, 12, 24, 2, 0, tzinfo=UTC)


def test_only_entries_at_or_before_the_moment_are_due_oldest_first(backend: Any) -> None:
    due = backend.due
    due.schedule("acc-b", DUE_NOW - timedelta(days=1))
    due.schedule("acc-future", DUE_NOW + timedelta(seconds=1))
    due.schedule("acc-now", DUE_NOW)
    due.schedule("acc-a", DUE_NOW - timedelta(days=1))
    due.schedule("acc-old", DUE_NOW - timedelta(days=30))

    assert list(due.due(DUE_NOW)) == [
        DueEntry("acc-old", DUE_NOW - timedelta(days=30)),
        DueEntry("acc-a", DUE_NOW - timedelta(days=1)),
        DueEntry("acc-b", DUE_NOW - timedelta(days=1)),
        DueEntry("acc-now", DUE_NOW),
    ]


def test_due_times_are_kept_to_the_second_rounded_up_in_any_time_zone(backend: Any) -> None:
    due = backend.due
    rounded = due.schedule("acc-1", DUE_NOW + timedelta(milliseconds=200))
    local = due.schedule("acc-2", DUE_NOW.astimezone(timezone(timedelta(hours=2))))

    assert rounded == DueEntry("acc-1", DUE_NOW + timedelta(seconds=1))
    assert list(due.due(DUE_NOW + timedelta(milliseconds=900))) == [DueEntry("acc-2", DUE_NOW)]
    assert list(due.due(DUE_NOW + timedelta(seconds=1))) == [local, rounded]


def test_scheduling_twice_is_one_entry_and_removing_twice_is_harmless(backend: Any) -> None:
    due = backend.due
    due.schedule("acc-1", DUE_NOW - timedelta(hours=1))
    entry = due.schedule("acc-1", DUE_NOW - timedelta(hours=1))

    assert list(due.due(DUE_NOW)) == [entry]
    due.remove(entry)
    due.remove(entry)
    assert list(due.due(DUE_NOW)) == []


def test_an_account_can_be_due_at_several_moments(backend: Any) -> None:
    due = backend.due
    later = due.schedule("acc-1", DUE_NOW)
    earlier = due.schedule("acc-1", DUE_NOW - timedelta(minutes=5))

    due.remove(later)

    assert list(due.due(DUE_NOW)) == [earlier]


def test_a_limit_takes_the_oldest_entries_and_a_small_page_size_still_reads_them_all(backend: Any) -> None:
    due = backend.due
    entries = [due.schedule(f"acc-{n}", DUE_NOW - timedelta(minutes=n)) for n in range(5)]
    oldest_first = entries[::-1]

    assert list(due.due(DUE_NOW, limit=2)) == oldest_first[:2]
    assert list(due.due(DUE_NOW, page_size=2)) == oldest_first


def test_entries_can_be_removed_while_the_due_ones_are_being_read(backend: Any) -> None:
    due = backend.due
    for n in range(5):
        due.schedule(f"acc-{n}", DUE_NOW - timedelta(minutes=n))

    seen = []
    for entry in due.due(DUE_NOW, page_size=2):
        seen.append(entry.account_id)
        due.remove(entry)

    assert seen == ["acc-4", "acc-3", "acc-2", "acc-1", "acc-0"]
    assert list(due.due(DUE_NOW)) == []


def test_scheduling_many_rounds_up_drops_repeats_and_makes_them_due(backend: Any) -> None:
    due = backend.due
    written = due.schedule_many(
        [
            DueEntry("acc-1", DUE_NOW - timedelta(minutes=5, milliseconds=400)),
            DueEntry("acc-1", DUE_NOW - timedelta(minutes=5, milliseconds=100)),
            DueEntry("acc-2", DUE_NOW + timedelta(days=7)),
        ]
    )

    assert sorted(written, key=lambda e: e.account_id) == [
        DueEntry("acc-1", DUE_NOW - timedelta(minutes=5)),
        DueEntry("acc-2", DUE_NOW + timedelta(days=7)),
    ]
    assert list(due.due(DUE_NOW)) == [DueEntry("acc-1", DUE_NOW - timedelta(minutes=5))]


def test_a_shard_returns_only_its_own_entries_and_every_entry_is_in_one_shard(backend: Any) -> None:
    due = backend.due
    written = [due.schedule(f"acc-{n}", DUE_NOW - timedelta(minutes=n)) for n in range(30)]

    shards = due.shards_to_sweep()
    by_shard = {shard: list(due.due_in_shard(shard, DUE_NOW)) for shard in range(shards)}

    assert shards >= DUE_SHARDS
    assert sorted(e.account_id for entries in by_shard.values() for e in entries) == sorted(
        e.account_id for e in written
    )
    assert all(e.shard == shard for shard, entries in by_shard.items() for e in entries)
    assert all(entries == sorted(entries, key=lambda e: e.due_at) for entries in by_shard.values())
    assert len([shard for shard, entries in by_shard.items() if entries]) > 1


def test_set_aside_entries_stay_due_marked_and_a_removed_one_does_not_come_back(backend: Any) -> None:
    due = backend.due
    kept = due.schedule("acc-kept", DUE_NOW - timedelta(hours=1))
    gone = due.schedule("acc-gone", DUE_NOW - timedelta(hours=2))
    due.remove(gone)

    due.set_aside([kept, gone], "rejection-1")

    (entry,) = list(due.due(DUE_NOW))
    assert (entry, entry.set_aside) == (kept, "rejection-1")
    assert [e.set_aside for e in due.due_in_shard(entry.shard, DUE_NOW)] == ["rejection-1"]
    due.remove(entry)
    assert list(due.due(DUE_NOW)) == []


def test_the_latest_progress_of_each_shard_is_kept(backend: Any) -> None:
    due = backend.due
    first = ShardProgress(shard=3, reviewed_at=DUE_NOW, accounts=20, max_lag_seconds=61.5, mean_lag_seconds=30.0)
    later = ShardProgress(
        shard=3, reviewed_at=DUE_NOW + timedelta(minutes=1), accounts=4, max_lag_seconds=2.0, mean_lag_seconds=1.0
    )
    other = ShardProgress(shard=5, reviewed_at=DUE_NOW, accounts=1, max_lag_seconds=0.0, mean_lag_seconds=0.0)

    for progress in (first, later, other):
        due.record_progress(progress)

    assert sorted(due.progress(), key=lambda p: p.shard) == [later, other]


# --- the audit log --------------------------------------------------------------------------------------------------


def deletion(account_id: str, subscription_id: str, **changes: Any) -> DeletionRecord:
    record = DeletionRecord(
        account_id=account_id,
        subscription_id=subscription_id,
        service="Azure",
        past_due_since=AT,
        disabled_at=AT + timedelta(days=30),
        deleted_at=AT + timedelta(days=120),
        purged_at=AT + timedelta(days=120),
        charges=(
            AuditedCharge(
                invoice_id="inv-1",
                amount=Money.parse("49.95", "EUR"),
                due_date=date(2026, 11, 20),
                status=ChargeStatus.OUTSTANDING,
            ),
        ),
        outstanding=(Money.parse("49.95", "EUR"),),
    )
    return record.model_copy(update=changes)


def test_the_first_deletion_record_stands(backend: Any) -> None:
    account_id = new_id()
    first = deletion(account_id, "sub-a")
    # A resumed purge sees less of the data, a moment later within the same second: it must not overwrite.
    partial = deletion(account_id, "sub-a", charges=(), deleted_at=first.deleted_at + timedelta(milliseconds=300))

    assert backend.audit.record_deletion(first) is True
    assert backend.audit.record_deletion(partial) is False
    assert backend.audit.deletions(account_id) == [first]


def test_deletions_are_kept_per_account_and_per_subscription(backend: Any) -> None:
    account_id, other_account = new_id(), new_id()
    records = [deletion(account_id, "sub-b"), deletion(account_id, "sub-a"), deletion(other_account, "sub-a")]
    for record in records:
        backend.audit.record_deletion(record)

    assert backend.audit.deletions(account_id) == [records[1], records[0]]
    assert backend.audit.deletions(other_account) == [records[2]]
    assert backend.audit.deletions(new_id()) == []


# --- the message index ---------------------------------------------------------------------------------------------


def test_a_remembered_message_is_found_by_its_id_and_an_unknown_one_is_not(backend: Any) -> None:
    message = SentMessage(message_id=str(uuid.uuid4()), account_id=new_id(), notification_id="ntf:payment-failed")

    backend.messages.remember(message)

    assert backend.messages.find(message.message_id) == message
    assert backend.messages.find(str(uuid.uuid4())) is None


def test_the_first_record_of_a_message_id_stands(backend: Any) -> None:
    message_id = str(uuid.uuid4())
    first = SentMessage(message_id=message_id, account_id=new_id(), notification_id="n-1")

    backend.messages.remember(first)
    backend.messages.remember(SentMessage(message_id=message_id, account_id=new_id(), notification_id="n-2"))

    assert backend.messages.find(message_id) == first


@pytest.mark.parametrize("message_id", ["<a1b2@outbox.pastdue.invalid>", "id/with#characters?keys=refuse", "x" * 300])
def test_any_message_id_the_mailer_gives_can_be_remembered(backend: Any, message_id: str) -> None:
    message = SentMessage(message_id=message_id, account_id=new_id(), notification_id="n-1")

    backend.messages.remember(message)

    assert backend.messages.find(message_id) == message


# --- the webhook ledger ---------------------------------------------------------------------------------------------


def webhook_call() -> VerifiedWebhook:
    return VerifiedWebhook(id=f"msg_{uuid.uuid4().hex}", timestamp=AT)


def fingerprint(body: bytes, path: str = "/api/accounts/acc-1/settlement") -> str:
    return request_fingerprint("POST", path, body)


def test_a_webhook_id_is_first_once_then_a_retry_for_the_same_request_and_a_replay_for_another(backend: Any) -> None:
    ledger = backend.webhook_ledger(FixedClock(AT))
    call = webhook_call()

    assert ledger.remember(call, fingerprint(b"{}")) is WebhookDelivery.FIRST
    assert ledger.remember(call, fingerprint(b"{}")) is WebhookDelivery.RETRY
    with pytest.raises(WebhookReplayError):
        ledger.remember(call, fingerprint(b'{"a":1}'))
    with pytest.raises(WebhookReplayError):
        ledger.remember(call, fingerprint(b"{}", "/api/accounts/acc-2/settlement"))
    assert ledger.remember(webhook_call(), fingerprint(b"{}")) is WebhookDelivery.FIRST


def test_ids_past_their_expiry_are_remembered_until_purged_and_only_they_are_purged(backend: Any) -> None:
    clock = FixedClock(AT)
    ledger = backend.webhook_ledger(clock)
    old, recent = webhook_call(), webhook_call()
    ledger.remember(old, fingerprint(b"{}"))
    clock.advance(timedelta(hours=25))
    ledger.remember(recent, fingerprint(b"{}"))

    assert ledger.remember(old, fingerprint(b"{}")) is WebhookDelivery.RETRY  # expired, not yet purged
    assert ledger.purge_expired(AT + timedelta(hours=24)) == 0  # expiring at that moment is not expired yet
    assert ledger.purge_expired(clock.now()) == 1
    assert ledger.purge_expired(clock.now()) == 0
    assert ledger.remember(old, fingerprint(b"other")) is WebhookDelivery.FIRST
    with pytest.raises(WebhookReplayError):
        ledger.remember(recent, fingerprint(b"other"))


def test_a_purge_at_a_later_moment_than_the_ledgers_own_clock_forgets_only_what_that_clock_saw_expire(
    backend: Any,
) -> None:
    # A retention run on the test clock (or `retention --at`) passes a moment weeks ahead of real time.
    clock = FixedClock(AT)
    ledger = backend.webhook_ledger(clock)
    old, recent = webhook_call(), webhook_call()
    ledger.remember(old, fingerprint(b"{}"))
    clock.advance(timedelta(hours=25))
    ledger.remember(recent, fingerprint(b"{}"))

    assert ledger.purge_expired(clock.now() + timedelta(days=31)) == 1
    with pytest.raises(WebhookReplayError):
        ledger.remember(recent, fingerprint(b"other"))  # still inside its window by the ledger's clock
    assert ledger.remember(old, fingerprint(b"other")) is WebhookDelivery.FIRST


# --- the test clock -------------------------------------------------------------------------------------------------


def test_the_test_clock_reads_zero_until_set_and_keeps_an_offset_to_the_microsecond(backend: Any) -> None:
    store = backend.clock_offsets
    assert store.offset() == timedelta(0)

    store.set_offset(timedelta(days=3650, microseconds=123_457))
    assert store.offset() == timedelta(days=3650, microseconds=123_457)
    store.set_offset(-timedelta(hours=5))
    assert store.offset() == -timedelta(hours=5)


def test_shifting_the_test_clock_adds_to_its_offset_starting_from_none(backend: Any) -> None:
    store = backend.clock_offsets

    assert store.shift(timedelta(days=31)) == timedelta(days=31)
    assert store.shift(timedelta(hours=2)) == timedelta(days=31, hours=2)
    assert store.offset() == timedelta(days=31, hours=2)


def test_concurrent_shifts_of_the_test_clock_are_all_kept(backend: Any) -> None:
    store = backend.clock_offsets
    writers = 6

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(lambda _: store.shift(timedelta(hours=1)), range(writers)))

    assert store.offset() == timedelta(hours=writers)


def test_clearing_the_test_clock_is_back_to_real_time_and_clearing_again_is_harmless(backend: Any) -> None:
    store = backend.clock_offsets
    store.set_offset(timedelta(days=1))

    store.clear()
    store.clear()

    assert store.offset() == timedelta(0)
    assert store.shift(timedelta(minutes=5)) == timedelta(minutes=5)


# --- the rejection store --------------------------------------------------------------------------------------------


def rejection(reason: str = "unknown event type", identifier: str | None = None) -> Rejection:
    return Rejection(
        id=identifier or new_id("msg"),
        queue="payment-events",
        message_id=identifier,
        event_id="evt-9",
        event_type="payment.refunded",
        reason=reason,
        raw_body_base64="eyJ0eXBlIjoicGF5bWVudC5yZWZ1bmRlZCJ9",
        received_at=AT,
        dequeue_count=1,
    )


def test_adding_a_rejection_twice_keeps_and_returns_the_first(backend: Any) -> None:
    first = rejection()
    again = first.model_copy(update={"reason": "another reason", "dequeue_count": 5})

    assert backend.rejections.add(first) == first
    assert backend.rejections.add(again) == first

    stored = backend.rejections.get(first.id)
    assert stored is not None
    assert stored.rejection == first
    assert backend.rejections.all() == [first]


def test_an_unknown_or_malformed_rejection_id_is_not_found(backend: Any) -> None:
    backend.rejections.add(rejection())

    assert backend.rejections.get(new_id("msg")) is None
    assert backend.rejections.get("not an id/at all") is None


def test_a_replace_needs_the_version_it_read_and_makes_a_new_one(backend: Any) -> None:
    original = rejection()
    backend.rejections.add(original)
    read = backend.rejections.get(original.id)
    assert read is not None
    resubmitted = original.resubmitted(AT + timedelta(hours=1))

    assert backend.rejections.replace(resubmitted, read.version) is True
    assert backend.rejections.replace(resubmitted.resubmitted(AT + timedelta(hours=2)), read.version) is False

    now = backend.rejections.get(original.id)
    assert now is not None
    assert now.rejection == resubmitted
    assert now.rejection.status is RejectionStatus.RESUBMITTED
    assert now.version != read.version


def test_all_rejections_are_listed_in_the_order_of_their_ids(backend: Any) -> None:
    added = [backend.rejections.add(rejection(identifier=f"msg-{n}")) for n in (3, 1, 2)]

    assert backend.rejections.all() == sorted(added, key=lambda r: r.id)


# --- the payment gateway --------------------------------------------------------------------------------------------

AMOUNT = Money.parse("69.95", "EUR")


@pytest.mark.parametrize(
    ("token", "outcome", "reason", "last4"),
    [
        ("tok_visa", ChargeOutcome.SUCCEEDED, None, "4242"),
        ("tok_mastercard", ChargeOutcome.SUCCEEDED, None, "4444"),
        ("tok_decline", ChargeOutcome.DECLINED, "card_declined", "0002"),
        ("tok_insufficient_funds", ChargeOutcome.DECLINED, "insufficient_funds", "9995"),
        ("tok_expired_card", ChargeOutcome.DECLINED, "expired_card", "0069"),
        ("tok_stolen_card", ChargeOutcome.DECLINED, "stolen_card", "9979"),
        ("tok_recovers_on_retry", ChargeOutcome.DECLINED, "insufficient_funds", "3220"),
        ("tok_timeout", ChargeOutcome.UNKNOWN, "gateway_timeout", "0341"),
        ("tok_nonsense", ChargeOutcome.DECLINED, "invalid_token", None),
    ],
)
def test_each_sandbox_token_answers_as_documented(
    backend: Any, token: str, outcome: ChargeOutcome, reason: str | None, last4: str | None
) -> None:
    result = backend.gateway.charge(AMOUNT, token, new_id("stl"))

    assert (result.outcome, result.reason, result.card_last4, result.amount) == (outcome, reason, last4, AMOUNT)


def test_a_card_that_recovers_declines_its_first_charge_per_account_and_succeeds_after(backend: Any) -> None:
    token = "tok_recovers_on_retry"
    first_key, second_key, third_key = new_id("rty"), new_id("rty"), new_id("rty")

    first = backend.gateway.charge(AMOUNT, token, first_key, account_id="acc-a")
    second = backend.gateway.charge(AMOUNT, token, second_key, account_id="acc-a")
    other_account = backend.gateway.charge(AMOUNT, token, third_key, account_id="acc-b")

    assert (first.outcome, first.reason) == (ChargeOutcome.DECLINED, "insufficient_funds")
    assert (second.outcome, second.reason) == (ChargeOutcome.SUCCEEDED, None)
    assert other_account.outcome is ChargeOutcome.DECLINED
    assert backend.gateway.charge(AMOUNT, token, first_key, account_id="acc-a") == first


def test_a_timed_out_charge_went_through_and_a_lookup_or_a_repeat_finds_it(backend: Any) -> None:
    key = new_id("stl")
    assert backend.gateway.charge(AMOUNT, "tok_timeout", key).outcome is ChargeOutcome.UNKNOWN

    found = backend.gateway.lookup(key)

    assert found is not None
    assert found.outcome is ChargeOutcome.SUCCEEDED
    assert backend.gateway.charge(AMOUNT, "tok_timeout", key) == found


def test_the_same_key_returns_the_first_result_and_charges_once(backend: Any) -> None:
    key = new_id("stl")

    first = backend.gateway.charge(AMOUNT, "tok_visa", key)
    second = backend.gateway.charge(AMOUNT, "tok_visa", key)

    assert second == first
    assert backend.gateway.lookup(key) == first
    assert backend.gateway.ledger() == [first]


@pytest.mark.parametrize(("amount", "token"), [(Money.parse("1.00", "EUR"), "tok_visa"), (AMOUNT, "tok_mastercard")])
def test_the_same_key_for_another_amount_or_card_is_refused(backend: Any, amount: Money, token: str) -> None:
    key = new_id("stl")
    first = backend.gateway.charge(AMOUNT, "tok_visa", key)

    with pytest.raises(GatewayKeyReuseError):
        backend.gateway.charge(amount, token, key)
    assert backend.gateway.ledger() == [first]


def test_a_key_the_gateway_never_saw_is_not_found(backend: Any) -> None:
    assert backend.gateway.lookup(new_id("stl")) is None


def test_a_snapshot_disagreement_is_recorded_once_per_event_and_is_not_a_deletion(backend: Any) -> None:
    account_id = new_id()
    record = SnapshotDisagreement(
        account_id=account_id,
        event_id="evt-1",
        event_type="payment.failed",
        fields=(AccountField.ADMIN_PRINCIPAL_ID,),
        recorded_at=AT,
    )

    assert backend.audit.record_snapshot_disagreement(record) is True
    assert backend.audit.record_snapshot_disagreement(record.model_copy(update={"recorded_at": AT})) is False
    assert backend.audit.snapshot_disagreements(account_id) == [record]
    assert backend.audit.deletions(account_id) == []


def test_hold_records_are_kept_oldest_first_once_each_and_apart_from_other_records(backend: Any) -> None:
    account_id = new_id()
    placed = HoldRecord(
        account_id=account_id,
        action=HoldAction.SET,
        at=AT,
        by="cli:alice",
        reason="Dispute DX-17 under review",
        since=AT,
        until=AT + timedelta(days=14),
    )
    changed = placed.model_copy(update={"action": HoldAction.CHANGED, "at": AT + timedelta(microseconds=5)})
    released = placed.model_copy(update={"action": HoldAction.RELEASED, "at": AT + timedelta(days=3), "by": "ops-9"})

    assert backend.audit.record_hold(released) is True
    assert backend.audit.record_hold(placed) is True
    assert backend.audit.record_hold(changed) is True
    assert backend.audit.record_hold(placed.model_copy(update={"reason": "another"})) is False

    assert backend.audit.holds(account_id) == [placed, changed, released]
    assert backend.audit.holds(new_id()) == []
    assert backend.audit.deletions(account_id) == []
    assert backend.audit.snapshot_disagreements(account_id) == []


def test_an_accounts_hold_and_a_subscriptions_deadline_shift_survive_a_round_trip(backend: Any) -> None:
    account_id = new_id()
    hold = CollectionHold(reason="Chargeback — wait for the bank", set_by="cli:alice", since=AT, until=None)
    subscription = Subscription(
        id="sub-1",
        name="Production",
        service="VMs",
        payment_method_id="pm-1",
        deadline_shift=timedelta(days=10, hours=3),
    )
    partition = AccountPartition(account_id=account_id)
    partition.set_account(account(account_id).model_copy(update={"hold": hold}))
    partition.put(subscription)
    backend.accounts.commit(partition)

    loaded = backend.accounts.load(account_id)

    assert loaded.account is not None
    assert loaded.account.hold == hold
    assert loaded.get(Subscription, "sub-1") == subscription


# --- the lifecycle publisher ----------------------------------------------------------------------------------------


def lifecycle_event(number: int, padding: int = 0) -> LifecycleEvent:
    return LifecycleEvent(
        id=f"le-{number:04d}",
        type="subscription.disabled",
        subject=f"/accounts/acc-1/subscriptions/sub-{number:04d}",
        time=AT + timedelta(seconds=number),
        data={"padding": "x" * padding},
    )


def test_events_are_published_in_order_as_json_arrays_of_cloudevents_few_per_message(backend: Any) -> None:
    events = [lifecycle_event(n, padding=1_000) for n in range(120)]

    report = backend.publisher.publish_batch(events)

    assert (report.published, report.failed, report.error) == (tuple(e.id for e in events), (), None)
    messages = backend.lifecycle_messages()
    sent = [item for body in messages for item in json.loads(body)]
    assert [item["id"] for item in sent] == [e.id for e in events]
    assert {(item["specversion"], item["source"]) for item in sent} == {("1.0", "/pastdue")}
    assert 1 < len(messages) < 5


def test_an_event_no_message_can_hold_is_reported_and_the_others_are_published(backend: Any) -> None:
    events = [lifecycle_event(1), lifecycle_event(2, padding=70_000), lifecycle_event(3)]

    report = backend.publisher.publish_batch(events)

    assert (report.published, report.failed) == (("le-0001", "le-0003"), ("le-0002",))
    assert report.error
    sent = [item["id"] for body in backend.lifecycle_messages() for item in json.loads(body)]
    assert sent == ["le-0001", "le-0003"]


def test_publishing_the_same_events_again_puts_them_on_the_queue_again(backend: Any) -> None:
    events = [lifecycle_event(1), lifecycle_event(2)]

    backend.publisher.publish_batch(events)
    backend.publisher.publish_batch(events)

    sent = [item["id"] for body in backend.lifecycle_messages() for item in json.loads(body)]
    assert sent == ["le-0001", "le-0002", "le-0001", "le-0002"]

"""Who administers an account and where its emails go: what a snapshot, an `account.updated` and the admin may change,
decided on in-memory partitions (no storage)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from shared.domain.account_update import (
    AccountUpdatedOutcome,
    set_notification_email,
    stage_account_updated,
)
from shared.domain.dunning_policies import DunningPolicies
from shared.domain.model import (
    Account,
    AccountField,
    ChangeSource,
    FieldChange,
    Subscription,
)
from shared.domain.outbox import Notification
from shared.domain.partition import ACCOUNT_ROW, AccountPartition, row_id
from shared.domain.payment_events import AccountUpdatedEvent, PaymentFailedEvent
from shared.domain.payment_failure import (
    EventReplayConflictError,
    PaymentFailedOutcome,
    event_payload_hash,
    stage_payment_failed,
)
from shared.domain.settle_balance import AccountNotFoundError
from shared.events.decoding import InvalidEventError, decode_payment_event
from tests.support.payment_events import PORTAL, payment_failed_document

ACCOUNT = "acc-1001"
NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)
CREATED_AT = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
OWNER = "user-7"
OWNER_EMAIL = "billing@contoso.example"
CREATED = FieldChange(at=CREATED_AT, source=ChangeSource.SNAPSHOT, cause="evt-created")


def stored(*rows: BaseModel, account: Account | None = None) -> AccountPartition:
    """A partition as the store hands it out: every row with a version token."""
    partition = AccountPartition(account_id=ACCOUNT)
    partition.account = account or Account(
        id=ACCOUNT,
        admin_principal_id=OWNER,
        notification_email=OWNER_EMAIL,
        locale="nl-NL",
        currency="EUR",
        admin_changed=CREATED,
        notification_email_changed=CREATED,
    )
    partition.etags[ACCOUNT_ROW] = "v1"
    for row in rows:
        partition.rows[row_id(row)] = row
        partition.etags[row_id(row)] = "v1"
    return partition


def account_of(partition: AccountPartition) -> Account:
    assert partition.account is not None
    return partition.account


def takeover_event(event_id: str = "evt-takeover") -> PaymentFailedEvent:
    document = payment_failed_document(ACCOUNT, event_id=event_id)
    document["data"]["account"] |= {"adminPrincipalId": "intruder-1", "notificationEmail": "intruder@evil.example"}
    return PaymentFailedEvent.model_validate(document)


def stage_failed(partition: AccountPartition, event: PaymentFailedEvent) -> Any:
    return stage_payment_failed(
        partition,
        event,
        payload_hash=event_payload_hash(event),
        now=NOW,
        policies=DunningPolicies(),
        portal_base_url=PORTAL,
    )


def account_updated(
    event_id: str, at: datetime, *, admin: str | None = None, email: str | None = None
) -> AccountUpdatedEvent:
    data: dict[str, Any] = {"accountId": ACCOUNT}
    if admin is not None:
        data["adminPrincipalId"] = admin
    if email is not None:
        data["notificationEmail"] = email
    return AccountUpdatedEvent.model_validate(
        {
            "specversion": "1.0",
            "id": event_id,
            "type": "account.updated",
            "source": "/billing-engine",
            "time": at.isoformat(),
            "data": data,
        }
    )


def stage_updated(partition: AccountPartition, event: AccountUpdatedEvent, now: datetime = NOW) -> Any:
    return stage_account_updated(
        partition, event, payload_hash=event_payload_hash(event), now=now, policies=DunningPolicies()
    )


def pending_email(notification_id: str, to_address: str = OWNER_EMAIL) -> Notification:
    return Notification(
        id=notification_id,
        template="payment_failed",
        locale="nl-NL",
        to_address=to_address,
        context={},
        created_at=NOW,
        next_attempt_at=NOW,
    )


# --- the snapshot in payment.failed ----------------------------------------------------------------------------


def test_a_snapshot_creates_the_account_with_its_admin_and_address_dated_by_the_event() -> None:
    partition = AccountPartition(account_id=ACCOUNT)

    result = stage_failed(partition, PaymentFailedEvent.model_validate(payment_failed_document(ACCOUNT)))

    account = account_of(partition)
    created = FieldChange(at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC), source=ChangeSource.SNAPSHOT, cause="evt-0001")
    assert (account.admin_principal_id, account.notification_email) == (OWNER, OWNER_EMAIL)
    assert (account.admin_changed, account.notification_email_changed) == (created, created)
    assert result.disagreeing_fields == ()


def test_a_snapshot_that_names_another_admin_and_address_changes_neither_and_reports_both() -> None:
    # GIVEN an existing account
    partition = stored()

    # WHEN a payment.failed names another admin and another address in its snapshot
    result = stage_failed(partition, takeover_event())

    # THEN the charges are applied, the account keeps its admin and address, and the disagreement is reported
    account = account_of(partition)
    assert result.outcome is PaymentFailedOutcome.APPLIED
    assert [c.invoice_id for c in partition.charges] == ["inv-1"]
    assert (account.admin_principal_id, account.notification_email) == (OWNER, OWNER_EMAIL)
    assert (account.admin_changed, account.notification_email_changed) == (CREATED, CREATED)
    assert result.disagreeing_fields == (AccountField.ADMIN_PRINCIPAL_ID, AccountField.NOTIFICATION_EMAIL)


def test_the_email_of_a_disagreeing_snapshot_goes_to_the_accounts_address_not_the_snapshots() -> None:
    partition = stored()

    stage_failed(partition, takeover_event())

    (notification,) = partition.notifications
    assert notification.to_address == OWNER_EMAIL


def test_a_snapshot_after_the_admins_own_change_does_not_undo_it() -> None:
    partition = stored()
    changed = FieldChange(at=NOW - timedelta(hours=1), source=ChangeSource.ADMIN, cause=OWNER)
    assert set_notification_email(partition, "ap@contoso.example", changed)

    result = stage_failed(partition, PaymentFailedEvent.model_validate(payment_failed_document(ACCOUNT)))

    assert account_of(partition).notification_email == "ap@contoso.example"
    assert result.disagreeing_fields == (AccountField.NOTIFICATION_EMAIL,)


# --- account.updated --------------------------------------------------------------------------------------------


def test_account_updated_sets_the_admin_and_the_address_it_names_dated_by_its_time() -> None:
    partition = stored()
    at = NOW - timedelta(minutes=10)

    result = stage_updated(partition, account_updated("evt-upd", at, admin="user-8", email="ap@contoso.example"))

    account = account_of(partition)
    change = FieldChange(at=at, source=ChangeSource.ACCOUNT_UPDATED, cause="evt-upd")
    assert result.outcome is AccountUpdatedOutcome.APPLIED
    assert result.applied_fields == (AccountField.ADMIN_PRINCIPAL_ID, AccountField.NOTIFICATION_EMAIL)
    assert (account.admin_principal_id, account.admin_changed) == ("user-8", change)
    assert (account.notification_email, account.notification_email_changed) == ("ap@contoso.example", change)
    assert partition.has_processed("evt-upd") is not None


def test_account_updated_leaves_the_field_it_does_not_name_as_it_is() -> None:
    partition = stored()

    stage_updated(partition, account_updated("evt-upd", NOW, email="ap@contoso.example"))

    account = account_of(partition)
    assert (account.admin_principal_id, account.admin_changed) == (OWNER, CREATED)


def test_an_older_account_updated_arriving_after_a_newer_one_changes_nothing() -> None:
    partition = stored()
    stage_updated(partition, account_updated("evt-new", NOW - timedelta(minutes=1), email="new@contoso.example"))

    result = stage_updated(
        partition, account_updated("evt-old", NOW - timedelta(minutes=5), email="old@contoso.example")
    )

    assert result.outcome is AccountUpdatedOutcome.STALE
    assert result.stale_fields == (AccountField.NOTIFICATION_EMAIL,)
    assert account_of(partition).notification_email == "new@contoso.example"
    assert partition.has_processed("evt-old") is not None  # a repeat of it is recognised too


def test_an_account_updated_older_than_the_admins_own_change_does_not_win() -> None:
    partition = stored()
    admin_change = FieldChange(at=NOW - timedelta(minutes=2), source=ChangeSource.ADMIN, cause=OWNER)
    set_notification_email(partition, "mine@contoso.example", admin_change)

    stage_updated(partition, account_updated("evt-late", NOW - timedelta(minutes=3), email="theirs@contoso.example"))

    assert account_of(partition).notification_email == "mine@contoso.example"


def test_the_admins_change_older_than_a_stored_change_does_not_win() -> None:
    partition = stored()
    stage_updated(partition, account_updated("evt-upd", NOW, email="theirs@contoso.example"))

    stands = set_notification_email(
        partition,
        "mine@contoso.example",
        FieldChange(at=NOW - timedelta(seconds=1), source=ChangeSource.ADMIN, cause=OWNER),
    )

    assert not stands
    assert account_of(partition).notification_email == "theirs@contoso.example"


def test_the_same_address_again_is_dated_anew_so_an_older_change_arriving_later_cannot_replace_it() -> None:
    partition = stored()
    stage_updated(partition, account_updated("evt-same", NOW - timedelta(minutes=1), email=OWNER_EMAIL))

    stage_updated(partition, account_updated("evt-older", NOW - timedelta(minutes=2), email="old@contoso.example"))

    assert account_of(partition).notification_email == OWNER_EMAIL


def test_a_time_ahead_of_our_clock_is_dated_now_so_it_cannot_block_later_changes() -> None:
    partition = stored()
    stage_updated(partition, account_updated("evt-future", NOW + timedelta(days=365), email="future@contoso.example"))
    account = account_of(partition)
    assert account.notification_email_changed is not None
    assert account.notification_email_changed.at == NOW

    later = FieldChange(at=NOW + timedelta(minutes=1), source=ChangeSource.ADMIN, cause=OWNER)
    assert set_notification_email(partition, "mine@contoso.example", later)


def test_a_new_address_moves_the_pending_emails_to_it_and_leaves_sent_ones() -> None:
    sent = pending_email("ntf-sent").mark_sent("msg-1", NOW)
    partition = stored(pending_email("ntf-pending"), sent)

    stage_updated(partition, account_updated("evt-upd", NOW, email="ap@contoso.example"))

    addresses = {n.id: n.to_address for n in partition.notifications}
    assert addresses == {"ntf-pending": "ap@contoso.example", "ntf-sent": OWNER_EMAIL}


def test_an_account_stored_before_changes_were_dated_takes_any_account_updated() -> None:
    legacy = Account(
        id=ACCOUNT, admin_principal_id=OWNER, notification_email=OWNER_EMAIL, locale="nl-NL", currency="EUR"
    )
    partition = stored(account=legacy)

    result = stage_updated(partition, account_updated("evt-upd", NOW - timedelta(days=400), admin="user-8"))

    assert result.outcome is AccountUpdatedOutcome.APPLIED
    assert account_of(partition).admin_principal_id == "user-8"


def test_a_repeat_of_account_updated_changes_nothing() -> None:
    partition = stored(Subscription(id="sub-a", name="P", service="Azure", payment_method_id="pm-1"))
    event = account_updated("evt-upd", NOW, admin="user-8")
    stage_updated(partition, event)
    partition.mark_committed({})

    repeat = stage_updated(partition, event)

    assert repeat.outcome is AccountUpdatedOutcome.DUPLICATE
    assert partition.staged() == []


def test_the_same_account_updated_id_with_other_content_is_refused() -> None:
    partition = stored()
    stage_updated(partition, account_updated("evt-upd", NOW, admin="user-8"))
    partition.mark_committed({})

    with pytest.raises(EventReplayConflictError):
        stage_updated(partition, account_updated("evt-upd", NOW, admin="user-9"))
    assert partition.staged() == []


def test_account_updated_for_an_unknown_account_is_refused() -> None:
    with pytest.raises(AccountNotFoundError):
        stage_updated(AccountPartition(account_id=ACCOUNT), account_updated("evt-upd", NOW, admin="user-8"))


# --- the event's shape ------------------------------------------------------------------------------------------


def event_document(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "specversion": "1.0",
        "id": "evt-upd",
        "type": "account.updated",
        "source": "/billing-engine",
        "time": "2026-11-24T10:00:00Z",
        "data": {"accountId": ACCOUNT, "notificationEmail": "ap@contoso.example"},
    }
    return document | changes


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        ({"time": None}, "time"),
        ({"time": "2026-11-24T10:00:00"}, "time"),  # no offset: not RFC 3339
        ({"data": {"accountId": ACCOUNT}}, "data"),
        ({"data": {"accountId": ACCOUNT, "notificationEmail": "a;b@contoso.example"}}, "data.notificationEmail"),
        ({"data": {"accountId": "bad/id", "adminPrincipalId": "user-8"}}, "data.accountId"),
    ],
)
def test_account_updated_needs_a_time_with_an_offset_and_a_valid_field_to_change(
    changes: dict[str, Any], where: str
) -> None:
    document = {key: value for key, value in event_document(**changes).items() if value is not None}

    with pytest.raises(InvalidEventError) as refused:
        decode_payment_event(json.dumps(document).encode())
    assert refused.value.reason.startswith(f"{where}:")
    assert refused.value.event_type == "account.updated"


def test_account_updated_is_an_event_type_of_the_queue() -> None:
    body = json.dumps(
        {
            "specversion": "1.0",
            "id": "evt-upd",
            "type": "account.updated",
            "source": "/billing-engine",
            "time": "2026-11-24T10:00:00Z",
            "data": {"accountId": "acc-1", "adminPrincipalId": "user-8"},
        }
    ).encode()

    event = decode_payment_event(body)

    assert isinstance(event, AccountUpdatedEvent)
    assert (event.data.admin_principal_id, event.data.notification_email) == ("user-8", None)

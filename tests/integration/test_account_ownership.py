"""Who administers an account and where its emails go, through the queue function and the services on Azurite:
a snapshot cannot take an account over, `account.updated` changes it in time order, the admin's own change counts."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.functions.queue import QueueMessage

from devhost.azurite import AzuriteProcess
from functions.payment_failed_queue import handler
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from shared.domain.errors import DomainError
from shared.domain.model import Account, Charge
from shared.domain.settle_balance import PrincipalNotAllowedError
from shared.storage.layout import ACCOUNTS_TABLE, ROOT_ROW_KEY
from tests.support.payment_events import (
    a_charge,
    body_of,
    build_dependencies,
    eml_files,
    payment_failed_document,
    read_eml,
)

pytestmark = pytest.mark.azurite

NOW = datetime(2026, 11, 24, 10, 0, 5, tzinfo=UTC)
OWNER, OWNER_EMAIL = "user-7", "billing@contoso.example"
INTRUDER, INTRUDER_EMAIL = "intruder-1", "intruder@evil.example"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def outbox_dir(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def deps(azurite: AzuriteProcess, outbox_dir: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch) -> Dependencies:
    """Dependencies on the test's Azurite, handed to the queue function as the worker's own."""
    built = build_dependencies(azurite.connection_string, outbox_dir, clock)
    monkeypatch.setattr(handler, "dependencies", lambda: built)
    return built


def deliver(body: bytes, message_id: str) -> None:
    handler.payment_failed(QueueMessage(id=message_id, body=body, dequeue_count=1, pop_receipt="pr"))


def account_of(deps: Dependencies, account_id: str) -> Account:
    account = deps.accounts.load(account_id).account
    assert account is not None
    return account


def created_by_payment_failed(deps: Dependencies, account_id: str) -> None:
    deliver(body_of(payment_failed_document(account_id, event_id="evt-created")), f"msg-created-{account_id}")
    assert account_of(deps, account_id).admin_principal_id == OWNER


def takeover_document(account_id: str, event_id: str = "evt-takeover") -> dict[str, Any]:
    document = payment_failed_document(account_id, event_id=event_id, charges=[a_charge("inv-2", "sub-b", "5.00")])
    document["data"]["account"] |= {"adminPrincipalId": INTRUDER, "notificationEmail": INTRUDER_EMAIL}
    return document


def account_updated_body(
    account_id: str, event_id: str, at: datetime, *, admin: str | None = None, email: str | None = None
) -> bytes:
    data: dict[str, Any] = {"accountId": account_id}
    if admin is not None:
        data["adminPrincipalId"] = admin
    if email is not None:
        data["notificationEmail"] = email
    document = {
        "specversion": "1.0",
        "id": event_id,
        "type": "account.updated",
        "source": "/billing-engine",
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": data,
    }
    return json.dumps(document).encode()


# --- a snapshot cannot take an account over --------------------------------------------------------------------


def test_a_snapshot_naming_another_admin_and_address_is_applied_for_its_charges_only(
    deps: Dependencies, account_id: str, outbox_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN an account created by a first failure, administered by user-7
    created_by_payment_failed(deps, account_id)

    # WHEN a payment.failed arrives whose snapshot names another admin and another address
    with caplog.at_level(logging.WARNING):
        deliver(body_of(takeover_document(account_id)), f"msg-takeover-{account_id}")

    # THEN its charge is recorded, the account keeps its admin and address, and the real admin keeps access
    partition = deps.accounts.load(account_id)
    assert partition.get(Charge, "inv-2") is not None
    account = account_of(deps, account_id)
    assert (account.admin_principal_id, account.notification_email) == (OWNER, OWNER_EMAIL)
    assert deps.account_overview(account_id, OWNER).account_id == account_id
    with pytest.raises(PrincipalNotAllowedError):
        deps.account_overview(account_id, INTRUDER)
    # AND the email about it went to the account's address, not the snapshot's
    assert {read_eml(path)["To"] for path in eml_files(outbox_dir)} == {OWNER_EMAIL}
    # AND the disagreement is audited and logged with ids only, and nothing was set aside
    (record,) = deps.audit.snapshot_disagreements(account_id)
    assert (record.event_id, record.event_type, record.fields, record.recorded_at) == (
        "evt-takeover",
        "payment.failed",
        ("adminPrincipalId", "notificationEmail"),
        NOW,
    )
    assert "evt-takeover" in caplog.text
    assert account_id in caplog.text
    for personal in (INTRUDER_EMAIL, OWNER_EMAIL, INTRUDER):
        assert personal not in caplog.text
    assert deps.get_rejection(f"msg-takeover-{account_id}") is None


def test_a_redelivered_disagreeing_snapshot_is_audited_once(deps: Dependencies, account_id: str) -> None:
    created_by_payment_failed(deps, account_id)
    body = body_of(takeover_document(account_id))

    deliver(body, f"msg-1-{account_id}")
    deliver(body, f"msg-2-{account_id}")

    assert [r.event_id for r in deps.audit.snapshot_disagreements(account_id)] == ["evt-takeover"]


def test_a_later_snapshot_does_not_undo_the_admins_own_change_of_address(
    deps: Dependencies, account_id: str, clock: FixedClock, outbox_dir: Path
) -> None:
    created_by_payment_failed(deps, account_id)
    clock.advance(timedelta(hours=1))
    view = deps.notification_email(account_id, OWNER, "ap@contoso.example")
    assert view.changed
    clock.advance(timedelta(hours=1))

    # a failure whose snapshot still carries the old address (the billing engine did not hear of the change)
    deliver(
        body_of(payment_failed_document(account_id, event_id="evt-later", charges=[a_charge("inv-3", "sub-b")])),
        f"msg-later-{account_id}",
    )

    assert account_of(deps, account_id).notification_email == "ap@contoso.example"
    later_email = [read_eml(p) for p in eml_files(outbox_dir)][-1]
    assert later_email["To"] == "ap@contoso.example"
    assert [r.fields for r in deps.audit.snapshot_disagreements(account_id)] == [("notificationEmail",)]


# --- account.updated --------------------------------------------------------------------------------------------


def test_account_updated_hands_the_account_to_the_new_admin(deps: Dependencies, account_id: str) -> None:
    created_by_payment_failed(deps, account_id)

    deliver(account_updated_body(account_id, "evt-upd", NOW, admin="user-8"), f"msg-upd-{account_id}")

    assert deps.get_rejection(f"msg-upd-{account_id}") is None
    account = account_of(deps, account_id)
    assert account.admin_principal_id == "user-8"
    assert account.admin_changed is not None
    assert (account.admin_changed.source, account.admin_changed.cause) == ("account.updated", "evt-upd")
    assert deps.account_overview(account_id, "user-8").account_id == account_id
    with pytest.raises(PrincipalNotAllowedError):
        deps.account_overview(account_id, OWNER)


def test_an_account_updated_older_than_the_admins_own_change_arriving_later_changes_nothing(
    deps: Dependencies, account_id: str, clock: FixedClock
) -> None:
    created_by_payment_failed(deps, account_id)
    clock.advance(timedelta(minutes=10))
    deps.notification_email(account_id, OWNER, "mine@contoso.example")
    sent_before_the_admins_change = NOW + timedelta(minutes=5)
    clock.advance(timedelta(minutes=10))

    body = account_updated_body(account_id, "evt-old", sent_before_the_admins_change, email="theirs@contoso.example")
    deliver(body, f"msg-old-{account_id}")

    assert account_of(deps, account_id).notification_email == "mine@contoso.example"
    assert deps.get_rejection(f"msg-old-{account_id}") is None
    assert deps.accounts.load(account_id).has_processed("evt-old") is not None


def test_the_admins_change_dated_before_a_stored_change_is_refused(
    deps: Dependencies, account_id: str, clock: FixedClock
) -> None:
    # GIVEN an address set by an account.updated processed on a worker whose clock runs ahead of this one
    created_by_payment_failed(deps, account_id)
    clock.advance(timedelta(minutes=2))
    deliver(account_updated_body(account_id, "evt-upd", clock.now(), email="theirs@contoso.example"), "msg-upd")
    clock.advance(timedelta(seconds=-30))

    # WHEN the admin's change is dated before it THEN it is refused and the newer address stands
    with pytest.raises(DomainError, match="changed later"):
        deps.notification_email(account_id, OWNER, "mine@contoso.example")
    assert account_of(deps, account_id).notification_email == "theirs@contoso.example"


def test_a_repeated_account_updated_changes_nothing_and_a_reused_id_with_other_content_is_set_aside(
    deps: Dependencies, account_id: str
) -> None:
    created_by_payment_failed(deps, account_id)
    body = account_updated_body(account_id, "evt-upd", NOW, email="ap@contoso.example")
    deliver(body, f"msg-1-{account_id}")
    first = deps.accounts.load(account_id)

    deliver(body, f"msg-2-{account_id}")
    deliver(account_updated_body(account_id, "evt-upd", NOW, email="other@contoso.example"), f"msg-3-{account_id}")

    after = deps.accounts.load(account_id)
    assert (after.version, after.rows, after.account) == (first.version, first.rows, first.account)
    assert deps.get_rejection(f"msg-2-{account_id}") is None
    rejection = deps.get_rejection(f"msg-3-{account_id}")
    assert rejection is not None
    assert (rejection.event_id, rejection.event_type) == ("evt-upd", "account.updated")
    assert rejection.reason.startswith("EventReplayConflictError:")


@pytest.mark.parametrize(
    ("make_body", "reason"),
    [
        (
            lambda acc: account_updated_body(acc, "evt-upd", NOW, email="billing;evil@contoso.example"),
            "data.notificationEmail: Value error, not a usable email address",
        ),
        (
            lambda acc: account_updated_body(acc, "evt-upd", NOW, email="=?utf-8?q?x?=@contoso.example"),
            "data.notificationEmail: Value error, not a usable email address",
        ),
        (
            lambda acc: json.dumps(
                {
                    "specversion": "1.0",
                    "id": "evt-upd",
                    "type": "account.updated",
                    "source": "/billing-engine",
                    "data": {"accountId": acc, "adminPrincipalId": "user-8"},
                }
            ).encode(),
            "time: Field required",
        ),
    ],
    ids=["semicolon", "encoded word", "no time"],
)
def test_an_account_updated_with_bad_input_is_set_aside_and_changes_nothing(
    deps: Dependencies, account_id: str, make_body: Any, reason: str
) -> None:
    created_by_payment_failed(deps, account_id)
    before = deps.accounts.load(account_id)

    deliver(make_body(account_id), f"msg-bad-{account_id}")

    rejection = deps.get_rejection(f"msg-bad-{account_id}")
    assert rejection is not None
    assert rejection.reason.startswith(reason)
    assert deps.accounts.load(account_id).version == before.version


def test_an_account_updated_for_an_unknown_account_is_set_aside(deps: Dependencies, account_id: str) -> None:
    deliver(account_updated_body(account_id, "evt-upd", NOW, admin="user-8"), f"msg-{account_id}")

    rejection = deps.get_rejection(f"msg-{account_id}")
    assert rejection is not None
    assert rejection.reason.startswith("AccountNotFoundError:")
    assert not deps.accounts.load(account_id).exists


# --- rows stored before ----------------------------------------------------------------------------------------


def test_an_account_stored_before_changes_were_dated_and_with_an_unusable_address_is_read_and_can_be_fixed(
    deps: Dependencies, account_id: str
) -> None:
    # GIVEN the root row as the previous release wrote it: no change dates, an address today's rule refuses
    legacy = {
        "id": account_id,
        "admin_principal_id": OWNER,
        "notification_email": "billing,finance@contoso.example",
        "locale": "en-US",
        "currency": "EUR",
    }
    deps.tables.table(ACCOUNTS_TABLE).create_entity(
        {"PartitionKey": account_id, "RowKey": ROOT_ROW_KEY, "Version": 1, "Data": json.dumps(legacy)}
    )

    # WHEN it is read, a failure arrives for it, and the billing engine then sends the right address
    read = account_of(deps, account_id)
    deliver(body_of(payment_failed_document(account_id, event_id="evt-fail")), f"msg-fail-{account_id}")
    deliver(account_updated_body(account_id, "evt-fix", NOW, email="billing@contoso.example"), f"msg-{account_id}")

    # THEN it was readable, the failure was applied (not retried to the poison queue), and the change applied
    assert (read.notification_email, read.notification_email_changed) == ("billing,finance@contoso.example", None)
    assert deps.accounts.load(account_id).get(Charge, "inv-1") is not None
    assert deps.get_rejection(f"msg-fail-{account_id}") is None
    assert account_of(deps, account_id).notification_email == "billing@contoso.example"

"""Input the HTTP functions must refuse clearly (issue 12): unusable addresses, numbers too long to read, and an
address change older than the one that stands."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from azure.functions.queue import QueueMessage

from functions.payment_failed_queue import handler
from shared.bootstrap import Dependencies
from shared.domain.clock import FixedClock
from tests.functions.test_settle_http import assert_problem, body, call
from tests.support.settlement_data import ADMIN, AccountData

pytestmark = pytest.mark.azurite

UNUSABLE_ADDRESSES = {
    "NUL": "ap\x00@contoso.example",
    "control character": "ap\x1f@contoso.example",
    "comma": "ap,evil@contoso.example",
    "semicolon": "ap;evil@contoso.example",
    "two dots": "ap..team@contoso.example",
    "leading dot": ".ap@contoso.example",
    "numeric domain": "a@1.2",
    "encoded word": "=?utf-8?b?YXA=?=@contoso.example",
}


@pytest.mark.parametrize("kind", list(UNUSABLE_ADDRESSES))
def test_an_address_the_mailer_cannot_use_is_a_422_naming_the_member_and_changes_nothing(
    deps: Dependencies, account: AccountData, kind: str
) -> None:
    before = deps.accounts.load(account.id)

    response = call(
        "notification-email", account.id, {"principalId": ADMIN, "notificationEmail": UNUSABLE_ADDRESSES[kind]}
    )

    assert_problem(response, 422, "validation-failed", pointer="#/notificationEmail")
    after = deps.accounts.load(account.id)
    assert (after.version, after.account) == (before.version, before.account)


def test_a_usable_address_is_stored_in_the_form_the_mailer_sends_to(account: AccountData) -> None:
    response = call("notification-email", account.id, {"principalId": ADMIN, "notificationEmail": "AP@Contoso.EXAMPLE"})

    assert response.status_code == 200
    assert body(response)["notificationEmail"] == "AP@contoso.example"


@pytest.mark.parametrize("route", ["overview", "notification-email"])
def test_a_number_too_long_to_read_is_a_400_not_a_500(account: AccountData, route: str) -> None:
    raw = b'{"principalId": "' + ADMIN.encode() + b'", "n": ' + b"1" * 4301 + b"}"

    response = call(route, account.id, raw)

    assert_problem(response, 400, "malformed-json", pointer="#")


def test_the_admins_change_older_than_the_stored_one_is_a_409_and_changes_nothing(
    deps: Dependencies, account: AccountData, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an address set by an account.updated on a worker whose clock ran 20 s ahead of this one
    clock = deps.clock
    assert isinstance(clock, FixedClock)
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    clock.advance(timedelta(seconds=20))
    event = {
        "specversion": "1.0",
        "id": "evt-upd",
        "type": "account.updated",
        "source": "/billing-engine",
        "time": clock.now().isoformat(),
        "data": {"accountId": account.id, "notificationEmail": "theirs@contoso.example"},
    }
    handler.payment_failed(QueueMessage(id="msg-upd", body=json.dumps(event).encode(), dequeue_count=1))
    clock.advance(timedelta(seconds=-20))
    before = deps.accounts.load(account.id)

    # WHEN the admin's change, dated by this worker's clock, comes in
    response = call("notification-email", account.id, {"principalId": ADMIN, "notificationEmail": "ap@contoso.example"})

    # THEN it is refused and the newer address stands
    assert_problem(response, 409, "notification-email-changed-later", pointer="#/notificationEmail")
    after = deps.accounts.load(account.id)
    assert (after.version, after.account) == (before.version, before.account)
    assert before.account is not None
    assert before.account.notification_email == "theirs@contoso.example"

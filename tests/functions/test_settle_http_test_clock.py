"""With the test clock on, the HTTP functions act on its time, while signatures keep to real time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devhost.azurite import AzuriteProcess
from shared import bootstrap
from shared.bootstrap import Dependencies, build
from shared.domain.clock import FixedClock
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Subscription
from tests.functions.test_settle_http import assert_problem, body, call, settle
from tests.support.settlement_data import (
    ADMIN,
    NOW,
    AccountData,
    PortalSigner,
    settle_body,
    settlement_settings,
    shared_card_account,
)

pytestmark = pytest.mark.azurite

AHEAD = timedelta(days=31)


@pytest.fixture
def deps(azurite: AzuriteProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dependencies]:
    """The process's dependencies with TEST_CLOCK_ENABLED, real time fixed at NOW, the test clock 31 days ahead."""
    settings = settlement_settings(azurite.connection_string, tmp_path / "outbox", test_clock_enabled=True)
    built = build(settings, clock=FixedClock(NOW))
    built.reset_test_clock()
    built.advance_test_clock(AHEAD)
    monkeypatch.setattr(bootstrap, "dependencies", lambda: built)
    monkeypatch.setattr(bootstrap, "http_dependencies", lambda: built)
    yield built
    built.reset_test_clock()


@pytest.fixture
def account(deps: Dependencies) -> AccountData:
    return shared_card_account().write(deps.accounts)


def test_a_call_signed_at_real_time_verifies_under_a_test_clock_a_month_ahead(account: AccountData) -> None:
    response = call("overview", account.id, {"principalId": ADMIN}, signer=PortalSigner(at=NOW))

    assert response.status_code == 200


def test_a_call_signed_at_the_test_clocks_time_is_refused(account: AccountData) -> None:
    response = call("overview", account.id, {"principalId": ADMIN}, signer=PortalSigner(at=NOW + AHEAD))

    assert_problem(response, 401, "invalid-signature", header="webhook-timestamp")


def test_a_retention_run_on_the_test_clock_does_not_forget_a_webhook_id_still_in_its_window(
    deps: Dependencies, account: AccountData
) -> None:
    call("overview", account.id, {"principalId": ADMIN}, webhook_id="msg_test_clock")

    report = deps.run_retention(now=deps.clock.now(), time_budget=timedelta(seconds=60))
    response = call("overview", account.id, {"principalId": "user-8"}, webhook_id="msg_test_clock")

    assert report.at == NOW + AHEAD
    assert_problem(response, 409, "webhook-replayed", header="webhook-id")


def test_a_settlement_re_enables_the_subscriptions_at_the_test_clocks_time(
    deps: Dependencies, account: AccountData
) -> None:
    response = settle(account.id, settle_body())

    assert body(response)["status"] == "succeeded"
    partition = deps.accounts.load(account.id)
    subscription = partition.get(Subscription, "sub-a")
    assert subscription is not None
    assert subscription.state is SubscriptionState.ENABLED
    assert subscription.history[-1].at == NOW + AHEAD

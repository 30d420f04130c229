"""The test clock moves every trigger of the local host: `python -m cli clock set/advance`, then the queue, the HTTP
API and the timer all act at the test clock's time, while signed calls keep to real time.

Each moment the app records is checked against bounds computed from real time measured around each command: the
test clock reads `target + (real now - real moment of the command)`, and that moment lies between the instants
just before and just after the command ran.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from devhost.azurite import REPO_ROOT, AzuriteProcess, start_azurite
from devhost.process import LocalHostProcess
from shared.bootstrap import TEST_CLOCK_REFRESH
from shared.domain.lifecycle import SubscriptionState
from shared.domain.model import Subscription
from shared.events.decoding import PAYMENT_EVENTS_QUEUE
from shared.storage.account_store import AccountStore
from shared.storage.tables import TableStorage
from tests.support.local_host import app_environment, start_app, wait_for
from tests.support.payment_events import PORTAL, payment_failed_document
from tests.support.settlement_data import ADMIN, PortalSigner, body_of, settle_body

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

FUNCTION_KEY = "test-clock-e2e-key"
EVERY_TWO_SECONDS = "*/2 * * * * *"
TARGET = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)
ADVANCE = timedelta(days=31)  # past the default 30-day grace period
TIMER_DEADLINE = 90.0


@dataclass(frozen=True)
class Command:
    """A clock command and the real instants just before and just after it ran."""

    before: datetime
    after: datetime


@dataclass
class Stack:
    host: LocalHostProcess
    connection_string: str
    environment: dict[str, str]

    @property
    def accounts(self) -> AccountStore:
        return AccountStore(TableStorage(self.connection_string))

    def subscription(self, account_id: str, subscription_id: str = "sub-a") -> Subscription | None:
        return self.accounts.load(account_id).get(Subscription, subscription_id)

    def clock(self, *arguments: str) -> tuple[str, Command]:
        before = datetime.now(UTC)
        finished = subprocess.run(
            [sys.executable, "-m", "cli", "clock", *arguments],
            cwd=REPO_ROOT,
            env=self.environment,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        after = datetime.now(UTC)
        # The documented staleness bound: after it, every trigger reads the new offset.
        time.sleep(TEST_CLOCK_REFRESH.total_seconds() + 0.5)
        return finished.stdout, Command(before, after)

    def post(self, path: str, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        # The body names the route's account and the Idempotency-Key, so the signature binds both.
        bound = {**payload, "accountId": path.split("/")[2]}
        if headers and "Idempotency-Key" in headers:
            bound["idempotencyKey"] = headers["Idempotency-Key"]
        raw = body_of(bound)
        # Signed at real time, as a real portal signs: the test clock must not move the signature window.
        signed = PortalSigner(at=datetime.fromtimestamp(int(time.time()), UTC)).headers(raw)
        call = urllib.request.Request(
            f"{self.host.base_url}/api{path}",
            data=raw,
            method="POST",
            headers={**signed, **(headers or {}), "x-functions-key": FUNCTION_KEY},
        )
        try:
            with urllib.request.urlopen(call, timeout=30) as reply:
                document: dict[str, Any] = json.loads(reply.read())
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} answered {error.code}: {error.read()!r}") from error
        return document


def on_the_test_clock(moment: datetime, set_by: Command, *, seen_after: datetime, seen_before: datetime) -> bool:
    """Whether `moment` is what the test clock read at some real instant between `seen_after` and `seen_before`."""
    earliest = TARGET + (seen_after - set_by.after)
    latest = TARGET + (seen_before - set_by.before)
    return earliest <= moment <= latest


@pytest.fixture(scope="module")
def own_azurite() -> Iterator[AzuriteProcess]:
    """An emulator of its own: the test clock is one row for the whole account, and the fast timer reviews every
    due account in it."""
    azurite = start_azurite()
    yield azurite
    azurite.stop()


@pytest.fixture(scope="module")
def stack(own_azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    directory = tmp_path_factory.mktemp("test-clock-e2e")
    settings = {
        "TEST_CLOCK_ENABLED": "true",
        "RETENTION_SCHEDULE": EVERY_TWO_SECONDS,
        "PORTAL_BASE_URL": PORTAL,
        "LOCAL_FUNCTION_KEY": FUNCTION_KEY,
    }
    host = start_app(directory, own_azurite.connection_string, **settings)
    # The CLI runs as an operator would, without the app's settings: the clock is kept in storage, not in a process.
    environment = app_environment(own_azurite.connection_string, directory / "cli-outbox")
    environment.pop("TEST_CLOCK_ENABLED", None)
    yield Stack(host, own_azurite.connection_string, environment)
    host.stop()


@pytest.fixture
def payment_queue(own_azurite: AzuriteProcess) -> QueueClient:
    queue = QueueClient.from_connection_string(
        own_azurite.connection_string, PAYMENT_EVENTS_QUEUE, message_encode_policy=TextBase64EncodePolicy()
    )
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def test_the_test_clock_moves_the_queue_the_http_api_and_the_timer(stack: Stack, payment_queue: QueueClient) -> None:
    # GIVEN the test clock set years ahead of real time
    shown, set_by = stack.clock("set", "2031-03-01T09:00:00Z")
    assert "test clock  2031-03-01T09:00:00Z" in shown

    # WHEN payment.failed arrives for two accounts, THEN the queue trigger records past_due_since on the test clock
    to_cancel, to_settle = (f"acc-{uuid.uuid4().hex[:12]}" for _ in range(2))
    sent = datetime.now(UTC)
    for account_id in (to_cancel, to_settle):
        payment_queue.send_message(json.dumps(payment_failed_document(account_id, event_id=f"evt-{account_id}")))

    def past_due(account_id: str) -> bool:
        subscription = stack.subscription(account_id)
        return subscription is not None and subscription.state is SubscriptionState.PAST_DUE

    wait_for(lambda: past_due(to_cancel) and past_due(to_settle), "both accounts to become PastDue", stack.host)
    seen = datetime.now(UTC)
    for account_id in (to_cancel, to_settle):
        subscription = stack.subscription(account_id)
        assert subscription is not None
        assert subscription.past_due_since is not None
        assert on_the_test_clock(subscription.past_due_since, set_by, seen_after=sent, seen_before=seen), (
            subscription.past_due_since
        )

    # AND the HTTP API answers with that state, to a call signed at real time
    overview = stack.post(f"/accounts/{to_cancel}/overview", {"principalId": ADMIN})
    shown_sub = next(s for s in overview["subscriptions"] if s["id"] == "sub-a")
    stored = stack.subscription(to_cancel)
    assert stored is not None
    assert shown_sub["state"] == "PastDue"
    assert datetime.fromisoformat(shown_sub["pastDueSince"]) == stored.past_due_since

    # AND a settlement over HTTP re-enables at the test clock's time
    settling = datetime.now(UTC)
    outcome = stack.post(
        f"/accounts/{to_settle}/settlement",
        settle_body(amount="49.95"),
        headers={"Idempotency-Key": f"e2e-{uuid.uuid4().hex}"},
    )
    settled = datetime.now(UTC)
    assert outcome["status"] == "succeeded"
    enabled = stack.subscription(to_settle)
    assert enabled is not None
    assert enabled.state is SubscriptionState.ENABLED
    assert on_the_test_clock(enabled.history[-1].at, set_by, seen_after=settling, seen_before=settled)

    # WHEN the test clock advances past the grace period
    shown, advanced_by = stack.clock("advance", "31d")
    assert "real time + " in shown

    # THEN a later timer firing cancels the unpaid subscription, at the advanced test clock's time
    def disabled() -> bool:
        subscription = stack.subscription(to_cancel)
        return subscription is not None and subscription.state is SubscriptionState.DISABLED

    wait_for(disabled, "a timer firing to disable the unpaid subscription", stack.host, timeout=TIMER_DEADLINE)
    seen = datetime.now(UTC)
    cancelled = stack.subscription(to_cancel)
    assert cancelled is not None
    assert on_the_test_clock(
        cancelled.history[-1].at - ADVANCE, set_by, seen_after=advanced_by.before, seen_before=seen
    ), cancelled.history[-1].at
    still_paid = stack.subscription(to_settle)
    assert still_paid is not None
    assert still_paid.state is SubscriptionState.ENABLED
    overview = stack.post(f"/accounts/{to_cancel}/overview", {"principalId": ADMIN})
    assert next(s["state"] for s in overview["subscriptions"] if s["id"] == "sub-a") == "Disabled"

"""The webhook ledger against Azurite: a retry is recognised, a replay with another request is refused."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.clock import FixedClock
from shared.storage.tables import TableStorage
from shared.storage.webhook_ledger import TableWebhookLedger
from shared.webhooks import VerifiedWebhook, WebhookDelivery, WebhookReplayError, request_fingerprint

pytestmark = pytest.mark.azurite

NOW = datetime(2026, 11, 30, 9, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def ledger(table_storage: TableStorage, clock: FixedClock) -> TableWebhookLedger:
    return TableWebhookLedger(table_storage, clock=clock)


def webhook() -> VerifiedWebhook:
    return VerifiedWebhook(id=f"msg_{uuid.uuid4().hex}", timestamp=NOW)


def fingerprint(body: bytes, path: str = "/api/accounts/acc-1/settlement") -> str:
    return request_fingerprint("POST", path, body)


def test_a_new_webhook_id_is_a_first_delivery(ledger: TableWebhookLedger) -> None:
    assert ledger.remember(webhook(), fingerprint(b"{}")) is WebhookDelivery.FIRST


def test_the_same_id_with_the_same_request_is_a_retry(ledger: TableWebhookLedger) -> None:
    call = webhook()
    ledger.remember(call, fingerprint(b"{}"))

    assert ledger.remember(call, fingerprint(b"{}")) is WebhookDelivery.RETRY


def test_the_same_id_with_another_body_is_a_replay(ledger: TableWebhookLedger) -> None:
    call = webhook()
    ledger.remember(call, fingerprint(b'{"a":1}'))

    with pytest.raises(WebhookReplayError):
        ledger.remember(call, fingerprint(b'{"a":2}'))


def test_the_same_id_and_body_sent_to_another_route_is_a_replay(ledger: TableWebhookLedger) -> None:
    call = webhook()
    ledger.remember(call, fingerprint(b"{}", "/api/accounts/acc-1/overview"))

    with pytest.raises(WebhookReplayError):
        ledger.remember(call, fingerprint(b"{}", "/api/accounts/acc-2/overview"))


def test_ids_are_remembered_across_ledger_instances(table_storage: TableStorage, clock: FixedClock) -> None:
    call = webhook()
    TableWebhookLedger(table_storage, clock=clock).remember(call, fingerprint(b"{}"))

    with pytest.raises(WebhookReplayError):
        TableWebhookLedger(table_storage, clock=clock).remember(call, fingerprint(b"[]"))


def test_expired_ids_are_purged_and_recent_ones_kept(ledger: TableWebhookLedger, clock: FixedClock) -> None:
    old = webhook()
    ledger.remember(old, fingerprint(b"{}"))
    clock.advance(timedelta(hours=25))
    recent = webhook()
    ledger.remember(recent, fingerprint(b"{}"))

    removed = ledger.purge_expired(clock.now())

    assert removed >= 1
    assert ledger.remember(old, fingerprint(b"other")) is WebhookDelivery.FIRST
    with pytest.raises(WebhookReplayError):
        ledger.remember(recent, fingerprint(b"other"))

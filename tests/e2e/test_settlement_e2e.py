"""The portal's side: signed HTTP calls over the wire to the local host (`python -m devhost`) with the function key."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from devhost.azurite import AzuriteProcess
from devhost.process import LocalHostProcess
from shared.storage.account_store import AccountStore
from shared.storage.tables import TableStorage
from tests.support.local_host import outbox_of, start_app
from tests.support.settlement_data import ADMIN, PortalSigner, body_of, bound, settle_body, shared_card_account

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

FUNCTION_KEY = "settlement-e2e-key"
ADMIN_KEY = "settlement-e2e-admin-key"
LIFECYCLE_QUEUE = "lifecycle-settlement-e2e"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: dict[str, Any]


@pytest.fixture(scope="module")
def local_host(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHostProcess]:
    host = start_app(
        tmp_path_factory.mktemp("settlement-e2e"),
        azurite.connection_string,
        LOCAL_FUNCTION_KEY=FUNCTION_KEY,
        LOCAL_ADMIN_KEY=ADMIN_KEY,
        LIFECYCLE_QUEUE=LIFECYCLE_QUEUE,
    )
    yield host
    host.stop()


@pytest.fixture
def account_id(local_host: LocalHostProcess, azurite: AzuriteProcess) -> str:
    storage = TableStorage(azurite.connection_string)
    storage.ensure_tables()
    return shared_card_account().write(AccountStore(storage)).id


def post(
    host: LocalHostProcess,
    path: str,
    payload: dict[str, Any],
    *,
    headers: dict[str, str] | None = None,
    function_key: str | None = FUNCTION_KEY,
) -> Reply:
    account_id = path.split("/")[2]  # /accounts/{accountId}/...
    key = {name.lower(): value for name, value in (headers or {}).items()}.get("idempotency-key")
    raw = body_of(bound(payload, account_id, key))
    # The host runs on the system clock, so the portal signs with the current time, as a real portal does.
    signer = PortalSigner(at=datetime.fromtimestamp(int(time.time()), UTC))
    all_headers = {**signer.headers(raw), **(headers or {})}
    if function_key is not None:
        all_headers["x-functions-key"] = function_key
    call = urllib.request.Request(f"{host.base_url}/api{path}", data=raw, method="POST", headers=all_headers)
    try:
        with urllib.request.urlopen(call, timeout=30) as reply:
            return Reply(reply.status, dict(reply.headers), json.loads(reply.read()))
    except urllib.error.HTTPError as error:
        content = error.read()
        try:
            document = json.loads(content)
        except json.JSONDecodeError:
            document = {"raw": content.decode(errors="replace")}
        return Reply(error.code, dict(error.headers), document)


def test_health_answers_without_a_key(local_host: LocalHostProcess) -> None:
    with urllib.request.urlopen(f"{local_host.base_url}/api/health", timeout=10) as reply:
        assert (reply.status, json.loads(reply.read())) == (200, {"status": "ok"})


def test_a_call_without_the_function_key_is_refused_by_the_host(local_host: LocalHostProcess, account_id: str) -> None:
    reply = post(local_host, f"/accounts/{account_id}/overview", {"principalId": ADMIN}, function_key=None)

    assert reply.status == 401


def hold_call(host: LocalHostProcess, method: str, account_id: str, payload: dict[str, Any], key: str) -> Reply:
    raw = json.dumps({"accountId": account_id, **payload}).encode()
    headers = {"content-type": "application/json", "x-functions-key": key}
    call = urllib.request.Request(f"{host.base_url}/api/accounts/{account_id}/hold", raw, headers, method=method)
    try:
        with urllib.request.urlopen(call, timeout=30) as reply:
            return Reply(reply.status, dict(reply.headers), json.loads(reply.read()))
    except urllib.error.HTTPError as error:
        return Reply(error.code, dict(error.headers), {"raw": error.read().decode(errors="replace")})


def test_the_support_hold_route_takes_the_admin_key_and_refuses_the_function_key(
    local_host: LocalHostProcess, account_id: str
) -> None:
    hold = {"reason": "Dispute DX-17", "setBy": "ops-7"}

    with_function_key = hold_call(local_host, "PUT", account_id, hold, FUNCTION_KEY)
    with_admin_key = hold_call(local_host, "PUT", account_id, hold, ADMIN_KEY)
    overview = post(local_host, f"/accounts/{account_id}/overview", {"principalId": ADMIN}, function_key=ADMIN_KEY)
    release = hold_call(local_host, "DELETE", account_id, {"releasedBy": "ops-7"}, ADMIN_KEY)

    assert with_function_key.status == 401
    assert (with_admin_key.status, with_admin_key.body["outcome"]) == (200, "set")
    assert overview.status == 200
    assert overview.body["hold"]["reason"] == "Dispute DX-17"
    assert (release.status, release.body["outcome"]) == (200, "released")


def test_an_unsigned_call_is_a_401_problem_over_the_wire(local_host: LocalHostProcess, account_id: str) -> None:
    reply = post(
        local_host,
        f"/accounts/{account_id}/overview",
        {"principalId": ADMIN},
        headers={"webhook-signature": "v1,AAAA"},
    )

    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith("application/problem+json")
    assert reply.body["errors"][0]["header"] == "webhook-signature"


def test_the_portal_flow_overview_quote_settle_and_replay(local_host: LocalHostProcess, account_id: str) -> None:
    overview = post(local_host, f"/accounts/{account_id}/overview", {"principalId": ADMIN})
    assert overview.status == 200
    assert {s["id"] for s in overview.body["subscriptions"] if s["canSettle"]} == {"sub-a", "sub-b"}

    quote = post(
        local_host, f"/accounts/{account_id}/settlement/quote", {"principalId": ADMIN, "subscriptionId": "sub-a"}
    )
    assert quote.status == 200
    assert quote.body["total"] == {"amount": "69.95", "currency": "EUR"}

    key = {"Idempotency-Key": f"e2e-{uuid.uuid4().hex}"}
    payload = settle_body(quoteVersion=quote.body["quoteVersion"], amount=quote.body["total"]["amount"])
    settled = post(local_host, f"/accounts/{account_id}/settlement", payload, headers=key)
    assert settled.status == 200, settled.body
    assert settled.body["status"] == "succeeded"
    assert settled.body["reenabledSubscriptions"] == ["sub-a", "sub-b"]

    replay = post(local_host, f"/accounts/{account_id}/settlement", payload, headers=key)
    assert replay.status == 200
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.body == settled.body

    after = post(local_host, f"/accounts/{account_id}/overview", {"principalId": ADMIN})
    assert {s["id"]: s["state"] for s in after.body["subscriptions"]}["sub-a"] == "Enabled"
    assert after.body["alerts"] == []
    receipts = [p for p in outbox_of(local_host).glob("*.eml") if account_id in p.read_text(errors="replace")]
    assert len(receipts) == 1


def test_a_partial_payment_is_refused_with_the_full_quote_over_the_wire(
    local_host: LocalHostProcess, account_id: str
) -> None:
    reply = post(
        local_host,
        f"/accounts/{account_id}/settlement",
        settle_body(amount="49.95"),
        headers={"Idempotency-Key": f"e2e-{uuid.uuid4().hex}"},
    )

    assert reply.status == 409
    assert reply.body["quote"]["total"]["amount"] == "69.95"

"""Support's hold routes (admin key) on Azurite: called directly as the worker calls them, and through the local
host's HTTP app in process, so the key check of the admin level is the one the host really makes."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devhost.app_loader import HttpFunction, index_functions
from devhost.http_server import FunctionHttpApp
from devhost.invoker import Invoker
from functions.settle_http import routes
from shared.bootstrap import Dependencies
from shared.domain.audit import HoldAction
from shared.domain.clock import FixedClock
from tests.support.settlement_data import ADMIN, NOW, AccountData, PortalSigner, body_of, bound

pytestmark = pytest.mark.azurite

FUNCTION_KEY = "functions-test-function-key"
ADMIN_KEY = "functions-test-admin-key"
# Fourteen days after NOW, given with an offset: the answer tells it in UTC.
UNTIL_WITH_OFFSET = "2026-12-14T11:00:00+02:00"
UNTIL_Z = "2026-12-14T09:00:00Z"


@pytest.fixture(scope="module")
def host_app() -> FunctionHttpApp:
    app = func.FunctionApp()
    app.register_functions(routes.bp)
    specs = [spec for spec in index_functions(app) if isinstance(spec, HttpFunction)]
    return FunctionHttpApp(specs, Invoker(str(Path.cwd())), FUNCTION_KEY, "api", admin_key=ADMIN_KEY)


def through_host(
    host_app: FunctionHttpApp, method: str, account_id: str, payload: dict[str, Any], key: str
) -> tuple[int, dict[str, Any] | None]:
    """One request through the local host's ASGI app: its router, its key check, the function, its answer."""
    raw = json.dumps(payload).encode()
    path = f"/api/accounts/{account_id}/hold"
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "server": ("127.0.0.1", 7071),
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
            (b"x-functions-key", key.encode()),
        ],
    }
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(host_app(scope, receive, send))
    status = int(sent[0]["status"])
    content_type = {name.lower(): value for name, value in sent[0]["headers"]}.get(b"content-type", b"")
    body = json.loads(sent[1]["body"]) if b"json" in content_type else None
    return status, body


def hold_body(account_id: str, **fields: Any) -> dict[str, Any]:
    return {"accountId": account_id, "reason": "Dispute DX-17", "setBy": "ops-7", **fields}


def direct(function: Any, method: str, account_id: str, payload: dict[str, Any] | bytes) -> func.HttpResponse:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/accounts/{account_id}/hold",
        headers={"content-type": "application/json"},
        params={},
        route_params={"accountId": account_id},
        body=raw,
    )
    response: func.HttpResponse = function(request)
    return response


def overview(account_id: str) -> dict[str, Any]:
    raw = body_of(bound({"principalId": ADMIN}, account_id, None))
    request = func.HttpRequest(
        method="POST",
        url=f"http://localhost:7071/api/accounts/{account_id}/overview",
        headers=PortalSigner().headers(raw, None),
        params={},
        route_params={"accountId": account_id},
        body=raw,
    )
    response = routes.overview(request)
    assert response.status_code == 200
    document: dict[str, Any] = json.loads(response.get_body())
    return document


def test_the_admin_key_holds_and_releases_and_the_overview_shows_the_hold(
    host_app: FunctionHttpApp, deps: Dependencies, account: AccountData
) -> None:
    status, held = through_host(host_app, "PUT", account.id, hold_body(account.id, until=UNTIL_WITH_OFFSET), ADMIN_KEY)
    shown = overview(account.id)
    assert isinstance(deps.clock, FixedClock)
    deps.clock.set(NOW + timedelta(days=3))
    released_status, released = through_host(
        host_app, "DELETE", account.id, {"accountId": account.id, "releasedBy": "ops-9"}, ADMIN_KEY
    )
    deps.clock.set(NOW)  # the portal signer signs at NOW; the signature window keeps to this clock here
    shown_after = overview(account.id)

    assert status == 200
    assert held is not None
    assert held["outcome"] == "set"
    assert held["hold"] == {
        "reason": "Dispute DX-17",
        "setBy": "ops-7",
        "since": "2026-11-30T09:00:00Z",
        "until": UNTIL_Z,
    }
    assert shown["hold"] == held["hold"]
    assert released_status == 200
    assert released is not None
    assert (released["outcome"], released["hold"]) == ("released", None)
    past_due = sorted(s.id for s in deps.accounts.load(account.id).subscriptions if s.past_due_since is not None)
    assert released["deadlinesMovedBy"] == dict.fromkeys(past_due, "P3D")
    assert shown_after["hold"] is None
    assert [(r.action, r.by) for r in deps.audit.holds(account.id)] == [
        (HoldAction.SET, "ops-7"),
        (HoldAction.RELEASED, "ops-9"),
    ]


def test_a_function_key_is_refused_on_both_hold_routes_and_nothing_changes(
    host_app: FunctionHttpApp, deps: Dependencies, account: AccountData
) -> None:
    put_status, _ = through_host(host_app, "PUT", account.id, hold_body(account.id), FUNCTION_KEY)
    delete_status, _ = through_host(
        host_app, "DELETE", account.id, {"accountId": account.id, "releasedBy": "ops-9"}, FUNCTION_KEY
    )
    none_status, _ = through_host(host_app, "PUT", account.id, hold_body(account.id), "")

    assert (put_status, delete_status, none_status) == (401, 401, 401)
    stored = deps.accounts.load(account.id).account
    assert stored is not None
    assert stored.hold is None
    assert deps.audit.holds(account.id) == []


@pytest.mark.parametrize(
    ("until", "detail"),
    [
        ("next tuesday", "Input should be a valid datetime"),
        ("2026-12-14T09:00:00", "Input should have timezone info"),
        ((NOW - timedelta(seconds=1)).isoformat(), "must be in the future"),
    ],
)
def test_a_bad_until_is_a_422_naming_until(
    host_app: FunctionHttpApp, deps: Dependencies, account: AccountData, until: str, detail: str
) -> None:
    status, problem = through_host(host_app, "PUT", account.id, hold_body(account.id, until=until), ADMIN_KEY)

    assert status == 422
    assert problem is not None
    assert [error["pointer"] for error in problem["errors"]] == ["#/until"]
    assert problem["errors"][0]["detail"].startswith(detail)
    assert deps.audit.holds(account.id) == []


def test_releasing_an_account_not_held_answers_not_held(deps: Dependencies, account: AccountData) -> None:
    response = direct(routes.release, "DELETE", account.id, {"accountId": account.id, "releasedBy": "ops-9"})

    assert response.status_code == 200
    assert json.loads(response.get_body()) == {
        "accountId": account.id,
        "outcome": "not_held",
        "hold": None,
        "deadlinesMovedBy": {},
    }


def test_holding_again_keeps_since_and_a_body_for_another_account_or_unknown_fields_are_refused(
    deps: Dependencies, account: AccountData
) -> None:
    first = direct(routes.hold, "PUT", account.id, hold_body(account.id))
    assert isinstance(deps.clock, FixedClock)
    deps.clock.set(NOW + timedelta(hours=2))
    again = direct(routes.hold, "PUT", account.id, hold_body(account.id, reason="Dispute DX-17, bank asked"))
    mismatch = direct(routes.hold, "PUT", account.id, hold_body("acc-other"))
    unknown = direct(routes.hold, "PUT", account.id, hold_body(account.id, principalId=ADMIN))
    missing = direct(routes.hold, "PUT", "acc-nobody", hold_body("acc-nobody"))

    assert json.loads(first.get_body())["outcome"] == "set"
    changed = json.loads(again.get_body())
    assert (changed["outcome"], changed["hold"]["since"]) == ("changed", "2026-11-30T09:00:00Z")
    assert (mismatch.status_code, json.loads(mismatch.get_body())["errors"][0]["pointer"]) == (422, "#/accountId")
    assert (unknown.status_code, json.loads(unknown.get_body())["errors"][0]["pointer"]) == (422, "#/principalId")
    assert missing.status_code == 404
    assert all(s.deadline_shift == timedelta(0) for s in deps.accounts.load(account.id).subscriptions)

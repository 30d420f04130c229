"""Many clients at once against the running local host and the portal: every call answered, no connection reset.

The host runs the real function_app.py through devhost.process on the session's Azurite; the portal runs as
`python -m portal` against that host. The counts are published to bench/results/faults-latest.json.
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devhost.azurite import REPO_ROOT, AzuriteProcess, free_port
from portal.signing import new_webhook_id, signing_key, webhook_headers
from shared.settings import LOCAL_WEBHOOK_SECRET
from shared.storage.account_store import AccountStore
from shared.storage.tables import TableStorage
from tests.faults.local_host import FUNCTION_KEY, LocalHost, start_local_host, wait_for
from tests.faults.published import publish
from tests.support.concurrent_calls import PreparedCall, fire_at_once, prepared
from tests.support.local_host import app_environment
from tests.support.settlement_data import ADMIN, shared_card_account

pytestmark = [pytest.mark.azurite, pytest.mark.e2e]

CONCURRENT_CALLS = 200


@dataclass
class Stack:
    host: LocalHost
    portal_port: int
    portal: subprocess.Popen[bytes]
    portal_log: Path
    account_id: str


def portal_answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/signin")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@pytest.fixture(scope="module")
def stack(azurite: AzuriteProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    storage = TableStorage(azurite.connection_string)
    storage.ensure_tables()
    account = shared_card_account().write(AccountStore(storage))
    directory = tmp_path_factory.mktemp("load")
    host = start_local_host(azurite.connection_string, directory / "host", directory / "outbox")
    portal_port = free_port()
    portal_log = directory / "portal.log"
    environment = app_environment(azurite.connection_string, directory / "outbox", LOCAL_FUNCTION_KEY=FUNCTION_KEY)
    command = [sys.executable, "-m", "portal", "--port", str(portal_port), "--api", f"{host.base_url}/api"]
    with portal_log.open("wb") as output:
        portal = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: portal.poll() is None and portal_answers(portal_port), "the portal to answer", 30)
        yield Stack(host, portal_port, portal, portal_log, account.id)
    finally:
        portal.terminate()
        portal.wait(timeout=15)
        host.stop()


def signed_overview(account_id: str) -> PreparedCall:
    body = json.dumps({"accountId": account_id, "principalId": ADMIN}).encode()
    headers = {
        "content-type": "application/json",
        "x-functions-key": FUNCTION_KEY,
        **webhook_headers(signing_key(LOCAL_WEBHOOK_SECRET), new_webhook_id(), int(time.time()), body),
    }
    return PreparedCall("POST", f"/api/accounts/{account_id}/overview", body, headers)


def portal_session(port: int) -> str:
    """Sign in as the account's admin, as a browser would; the session cookie to send with every page."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/signin")
        form = connection.getresponse()
        page = form.read().decode()
        cookie = (form.getheader("set-cookie") or "").split(";")[0]
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert cookie
        assert token is not None
        connection.close()
        body = urllib.parse.urlencode({"csrf": token.group(1), "principal": ADMIN, "next": "/accounts"})
        connection.request(
            "POST", "/signin", body, {"cookie": cookie, "content-type": "application/x-www-form-urlencoded"}
        )
        signed_in = connection.getresponse()
        signed_in.read()
        assert signed_in.status == 303
        return (signed_in.getheader("set-cookie") or cookie).split(";")[0]
    finally:
        connection.close()


def test_two_hundred_concurrent_signed_calls_are_all_answered_without_a_reset(stack: Stack) -> None:
    calls = prepared(CONCURRENT_CALLS, lambda _: signed_overview(stack.account_id))

    tally = fire_at_once(stack.host.port, calls)

    publish("concurrent_signed_calls", {"calls": len(calls), **tally.as_counts()})
    assert tally.resets == 0
    assert sum(tally.errors.values()) == 0
    assert tally.answered == {200: CONCURRENT_CALLS}
    assert "Traceback" not in stack.host.log_text()


def test_two_hundred_concurrent_portal_pages_are_all_answered_and_reach_the_api(stack: Stack) -> None:
    cookie = portal_session(stack.portal_port)
    page = PreparedCall("GET", f"/accounts/{stack.account_id}", headers={"cookie": cookie})

    tally = fire_at_once(stack.portal_port, prepared(CONCURRENT_CALLS, lambda _: page))

    publish("concurrent_portal_pages", {"calls": CONCURRENT_CALLS, **tally.as_counts()})
    assert tally.resets == 0
    assert sum(tally.errors.values()) == 0
    assert tally.answered == {200: CONCURRENT_CALLS}  # a page whose API call failed is a 502, not a 200
    assert "Traceback" not in stack.portal_log.read_text(encoding="utf-8", errors="replace")

"""A store that does not answer is a 503 problem within seconds on the HTTP path, not minutes of SDK retries.

The function is called as the worker calls it, with the process-wide dependencies the composition root builds from
the environment, pointed at a loopback port where no storage answers.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import azure.functions as func
import pytest

from devhost.azurite import connection_string, free_port
from functions.settle_http import routes
from shared import bootstrap
from tests.support.settlement_data import ADMIN, PortalSigner, body_of, bound

# Loose on purpose: the SDK defaults took minutes; a bound of a few seconds per call is what is wanted.
WITHIN_SECONDS = 30.0


@pytest.fixture
def dead_store(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """A loopback port with nobody behind it ("refused"), or one that accepts and never answers ("silent")."""
    kind = str(request.param)
    if kind == "refused":
        yield kind, free_port()
        return
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    try:
        yield kind, int(listener.getsockname()[1])
    finally:
        listener.close()


@pytest.fixture
def process_dependencies(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The composition root's process-wide caches, emptied before and after the test (they read the environment)."""
    for name in ("PORTAL_WEBHOOK_SECRET", "ACS_CONNECTION_STRING", "WEBSITE_SITE_NAME", "LIFECYCLE_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OUTBOX_DIR", str(tmp_path_factory.mktemp("outbox")))
    caches = [getattr(bootstrap, name) for name in ("dependencies", "http_dependencies") if hasattr(bootstrap, name)]
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


@pytest.mark.usefixtures("process_dependencies")
@pytest.mark.parametrize("dead_store", ["refused", "silent"], indirect=True)
def test_a_dead_store_is_a_503_problem_within_seconds(
    dead_store: tuple[str, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    kind, port = dead_store
    monkeypatch.setenv("AzureWebJobsStorage", connection_string(port, port, port))
    account_id = "acc-outage"
    raw = body_of(bound({"principalId": ADMIN}, account_id))
    signer = PortalSigner(at=datetime.fromtimestamp(int(time.time()), UTC))
    call = func.HttpRequest(
        method="POST",
        url=f"http://127.0.0.1:7071/api/accounts/{account_id}/overview",
        headers=signer.headers(raw),
        route_params={"accountId": account_id},
        body=raw,
    )

    started = time.monotonic()
    response = routes.overview(call)
    elapsed = time.monotonic() - started

    with capsys.disabled():
        print(f"\n  {kind} store: HTTP {response.status_code} after {elapsed:.2f} s")
    assert response.status_code == 503, response.get_body()
    assert response.mimetype == "application/problem+json"
    assert json.loads(response.get_body())["type"].endswith("/problems/storage-unavailable")
    assert response.headers["Retry-After"]
    assert elapsed < WITHIN_SECONDS

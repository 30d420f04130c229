"""Hostile HTTP against the running portal (`python -m portal`): broken body framing, header injection through the
sign-in target, and clients that stall or vanish. Every bad request gets a clear 4xx, never a hang or a traceback.

No API is needed for these pages: the portal points at a port where nothing listens.
"""

from __future__ import annotations

import http.client
import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from devhost.azurite import REPO_ROOT, free_port
from tests.faults.local_host import wait_for
from tests.faults.published import publish
from tests.support.local_host import app_environment
from tests.support.raw_http import RawAnswer, abort, closed_by_server_within, connect, exchange, framing_counts

pytestmark = [pytest.mark.e2e]

RAW_WAIT_SECONDS = 30.0  # longer than the portal's body timeout: a request that hangs past it fails
MAX_FORM_BYTES = 64 * 1024
FORM_FRAMING: dict[str, tuple[str, bytes, int]] = {
    "Content-Length -1": ("Content-Length: -1\r\n", b"x" * 4096, 400),
    "Content-Length not a number": ("Content-Length: ten\r\n", b"principal=user-7", 400),
    "Content-Length past the form limit": (f"Content-Length: {MAX_FORM_BYTES + 1}\r\n", b"principal=", 413),
    "chunk size -1": ("Transfer-Encoding: chunked\r\n", b"-1\r\n" + b"x" * 4096, 400),
    "chunk size not hexadecimal": ("Transfer-Encoding: chunked\r\n", b"zz\r\nab\r\n0\r\n\r\n", 400),
    "chunked form past the limit": (
        "Transfer-Encoding: chunked\r\n",
        b"".join(b"4000\r\n" + b"x" * 0x4000 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n",
        413,
    ),
    "body shorter than its Content-Length": ("Content-Length: 100\r\n", b"principal=user-7", 408),
    "chunked body that stops": ("Transfer-Encoding: chunked\r\n", b"10\r\nprincipal", 408),
}


@dataclass
class Portal:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def start_portal(directory: Path) -> Portal:
    port, nothing_there = free_port(), free_port()
    log = directory / "portal.log"
    environment = app_environment("UseDevelopmentStorage=true", directory / "outbox")
    command = [sys.executable, "-m", "portal", "--port", str(port), "--api", f"http://127.0.0.1:{nothing_there}/api"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
    portal = Portal(port, process, log)
    wait_for(lambda: process.poll() is None and "Portal: http://" in portal.log_text(), "the portal to start", 30)
    return portal


def stop_portal(portal: Portal) -> None:
    if portal.process.poll() is None:
        portal.process.send_signal(signal.SIGINT)
        try:
            portal.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            portal.process.kill()
            portal.process.wait()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    running = start_portal(tmp_path_factory.mktemp("hostile-portal"))
    try:
        yield running
    finally:
        stop_portal(running)


def signin_form(port: int) -> tuple[str, str]:
    """The session cookie and form token a browser gets with the sign-in page."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/signin")
        reply = connection.getresponse()
        token = re.search(r'name="csrf" value="([^"]+)"', reply.read().decode())
        cookie = (reply.getheader("set-cookie") or "").split(";")[0]
    finally:
        connection.close()
    assert token is not None
    assert cookie
    return cookie, token.group(1)


def post_signin(portal: Portal, cookie: str, framing: str, body: bytes) -> bytes:
    head = f"POST /signin HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
    head += f"Content-Type: application/x-www-form-urlencoded\r\n{framing}\r\n"
    return head.encode() + body


def test_bad_form_framing_is_a_clear_4xx_never_a_hang_or_a_traceback(portal: Portal) -> None:
    cookie, _ = signin_form(portal.port)

    def attempt(case: tuple[str, bytes, int]) -> RawAnswer:
        framing, body, _ = case
        return exchange(portal.port, post_signin(portal, cookie, framing, body), wait=RAW_WAIT_SECONDS)

    with ThreadPoolExecutor(len(FORM_FRAMING)) as pool:
        answers = dict(zip(FORM_FRAMING, pool.map(attempt, FORM_FRAMING.values()), strict=True))

    outcomes = {name: "hung" if answer.timed_out else answer.status for name, answer in answers.items()}
    publish("hostile_portal_framing", framing_counts(outcomes))
    assert outcomes == {name: expected for name, (_, _, expected) in FORM_FRAMING.items()}
    assert "Traceback" not in portal.log_text()
    assert signin_form(portal.port)


def test_a_sign_in_target_with_a_line_break_adds_no_header(portal: Portal) -> None:
    cookie, token = signin_form(portal.port)
    form = urllib.parse.urlencode(
        {"csrf": token, "principal": "user-7", "next": "/accounts\r\nSet-Cookie: portal_session=planted"}
    ).encode()

    answer = exchange(
        portal.port,
        post_signin(portal, cookie, f"Content-Length: {len(form)}\r\n", form),
        wait=RAW_WAIT_SECONDS,
    )

    assert answer.status == 303
    assert answer.header("location") == "/accounts"
    assert all("planted" not in value for _, value in answer.headers)


def test_an_idle_connection_is_closed_and_an_aborted_one_logs_nothing(portal: Portal) -> None:
    idle = connect(portal.port, timeout=5)
    for partial in (b"", b"GET /sig", b"POST /signin HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"):
        sock = connect(portal.port, timeout=5)
        sock.sendall(partial)
        abort(sock)
    try:
        assert closed_by_server_within(idle, 20)
    finally:
        idle.close()
    assert "Traceback" not in portal.log_text()


def test_ctrl_c_does_not_wait_for_idle_clients(tmp_path: Path) -> None:
    running = start_portal(tmp_path)
    idle = connect(running.port, timeout=5)
    kept_alive = http.client.HTTPConnection("127.0.0.1", running.port, timeout=5)
    kept_alive.request("GET", "/signin")
    kept_alive.getresponse().read()
    try:
        running.process.send_signal(signal.SIGINT)
        started = time.monotonic()
        code = running.process.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        idle.close()
        kept_alive.close()
        stop_portal(running)

    assert code == 0
    assert took < 5

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from devhost.loopback_server import HEAD_TIMEOUT_SECONDS
from devhost.process import LocalHostProcess, start_local_host
from tests.support.local_host import wait_for
from tests.support.raw_http import abort, closed_by_server_within, connect

pytestmark = [pytest.mark.e2e, pytest.mark.azurite]

SAMPLE_APP = Path(__file__).parent / "sample_app"
FUNCTION_KEY = "e2e-function-key"
SAMPLE_SCHEDULE = "*/2 * * * * *"
TIMER_DEADLINE = 60.0
TIMER_FIRED = re.compile(
    r"\[tick\] \[[^\]]+\] Executing \(Reason='Timer fired for the occurrence at (?P<occurrence>\S+)"
    r"(?P<past_due> \(past due\))?'\)"
)


@dataclass
class RunningHost:
    local: LocalHostProcess
    queue_log: Path
    timer_log: Path
    connection_string: str

    @property
    def base_url(self) -> str:
        return self.local.base_url

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.local.process

    @property
    def log(self) -> Path:
        return self.local.log

    def queue(self, name: str, *, base64: bool = True) -> QueueClient:
        if not base64:
            return QueueClient.from_connection_string(self.connection_string, name)
        return QueueClient.from_connection_string(
            self.connection_string,
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=TextBase64DecodePolicy(),
        )

    def timer_ticks(self) -> list[TimerTick]:
        """What the timer function saw, one line per invocation, in order (a line being written is left out)."""
        text = self.timer_log.read_text(encoding="utf-8") if self.timer_log.exists() else ""
        return [TimerTick.from_line(line) for line in text[: text.rfind("\n") + 1].splitlines()]

    def timer_occurrences(self) -> list[tuple[datetime, bool]]:
        """Each timer invocation the host logged: the occurrence it fired for, and whether it called it past due."""
        return [
            (datetime.fromisoformat(match["occurrence"]), match["past_due"] is not None)
            for match in TIMER_FIRED.finditer(self.log.read_text(encoding="utf-8"))
        ]

    def queue_entries(self) -> list[tuple[str, int]]:
        if not self.queue_log.exists():
            return []
        lines = self.queue_log.read_text(encoding="utf-8").splitlines()
        return [(body, int(count)) for body, count in (line.split("\t") for line in lines)]


@dataclass(frozen=True)
class TimerTick:
    past_due: bool
    next_occurrence: datetime

    @classmethod
    def from_line(cls, line: str) -> TimerTick:
        record = json.loads(line)
        return cls(past_due=record["past_due"], next_occurrence=datetime.fromisoformat(record["next"]))


def on_the_sample_schedule(moment: datetime) -> bool:
    return moment.microsecond == 0 and moment.second % 2 == 0


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]


def request(
    url: str, *, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> Response:
    call = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=10) as reply:
            return Response(reply.status, reply.read(), dict(reply.headers))
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read(), dict(error.headers))


def start_host(directory: Path, connection_string: str) -> RunningHost:
    queue_log, timer_log = directory / "queue.log", directory / "timer.log"
    settings = {
        "SAMPLE_SCHEDULE": SAMPLE_SCHEDULE,
        "SAMPLE_QUEUE_LOG": str(queue_log),
        "SAMPLE_TIMER_LOG": str(timer_log),
        # The environment wins over the settings file, so this must not be used.
        "AzureWebJobsStorage": "UseDevelopmentStorage=false;broken",
    }
    environment = {**os.environ, "AzureWebJobsStorage": connection_string, "LOCAL_FUNCTION_KEY": FUNCTION_KEY}
    local = start_local_host(directory, environment, app_dir=SAMPLE_APP, settings=settings)
    return RunningHost(local, queue_log, timer_log, connection_string)


def stop_host(host: RunningHost) -> None:
    host.local.stop()


@pytest.fixture(scope="module")
def host(storage_connection_string: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningHost]:
    running = start_host(tmp_path_factory.mktemp("devhost"), storage_connection_string)
    yield running
    stop_host(running)


def test_function_level_route_answers_with_the_key_in_the_header(host: RunningHost) -> None:
    reply = request(
        f"{host.base_url}/api/echo/alice", method="POST", body=b"hi", headers={"x-functions-key": FUNCTION_KEY}
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.headers["X-Sample"] == "yes"
    assert json.loads(reply.body) == {"name": "alice", "method": "POST", "body": "hi", "function": "echo"}


def test_function_level_route_without_a_key_is_unauthorized(host: RunningHost) -> None:
    assert request(f"{host.base_url}/api/echo/alice").status == 401
    assert request(f"{host.base_url}/api/echo/alice", headers={"x-functions-key": "wrong"}).status == 401


def test_function_level_route_accepts_the_key_as_code_parameter(host: RunningHost) -> None:
    reply = request(f"{host.base_url}/api/echo/bob?code={FUNCTION_KEY}")
    assert reply.status == 200
    assert json.loads(reply.body)["name"] == "bob"


def test_anonymous_route_needs_no_key(host: RunningHost) -> None:
    reply = request(f"{host.base_url}/api/ping")
    assert (reply.status, reply.body) == (200, b"pong")
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_async_function_with_an_int_route_constraint(host: RunningHost) -> None:
    reply = request(f"{host.base_url}/api/square/12")
    assert (reply.status, reply.body) == (201, b"144")
    assert request(f"{host.base_url}/api/square/twelve").status == 404


def test_unknown_route_and_wrong_method(host: RunningHost) -> None:
    assert request(f"{host.base_url}/api/nothing-here").status == 404
    assert request(f"{host.base_url}/ping").status == 404
    reply = request(f"{host.base_url}/api/square/3", method="POST", body=b"")
    assert reply.status == 405
    assert reply.headers["Allow"] == "GET"


def test_unhandled_exception_is_a_500_with_the_traceback_logged(host: RunningHost) -> None:
    assert request(f"{host.base_url}/api/boom").status == 500
    wait_for(lambda: 'raise RuntimeError("boom")' in host.log.read_text(), "the traceback in the log")
    assert FUNCTION_KEY not in host.log.read_text()


def test_base64_queue_message_is_consumed_and_deleted(host: RunningHost) -> None:
    queue = host.queue("work")
    wait_for(queue_exists(queue), "the host to create queue 'work'")

    queue.send_message("hello")

    wait_for(lambda: ("hello", 1) in host.queue_entries(), "the message to be processed")
    wait_for(lambda: queue.get_queue_properties().approximate_message_count == 0, "the message to be deleted")


def test_failing_message_is_tried_max_dequeue_count_times_then_poisoned(host: RunningHost) -> None:
    queue, poison = host.queue("work"), host.queue("work-poison", base64=False)
    wait_for(queue_exists(queue), "the host to create queue 'work'")

    queue.send_message("fail")

    wait_for(lambda: "ZmFpbA==" in visible_contents(poison), "the original message text on work-poison")
    assert [count for body, count in host.queue_entries() if body == "fail"] == [1, 2, 3, 4, 5]
    assert queue.get_queue_properties().approximate_message_count == 0


def test_message_that_is_not_base64_is_poisoned_without_invoking(host: RunningHost) -> None:
    plain, poison = host.queue("work", base64=False), host.queue("work-poison", base64=False)
    wait_for(queue_exists(plain), "the host to create queue 'work'")

    plain.send_message("plain text!")

    wait_for(lambda: "plain text!" in visible_contents(poison), "the message on work-poison")
    assert all(body != "plain text!" for body, _ in host.queue_entries())
    assert host.log.read_text().count("is not valid base64") == 5


def test_timer_fires_on_its_schedule_from_an_app_setting(host: RunningHost) -> None:
    # WHEN the timer has run at least twice (the deadline leaves room for a machine under load)
    wait_for(lambda: len(host.timer_ticks()) >= 2, "two timer invocations", host.local, TIMER_DEADLINE)

    # THEN each invocation ran for its own occurrence of the app setting's schedule, in order (an occurrence on an
    # odd second would mean another schedule), and got the host's past-due decision and the next occurrence
    ticks = host.timer_ticks()
    fired = host.timer_occurrences()[: len(ticks)]
    assert len(fired) == len(ticks)
    occurrences = [occurrence for occurrence, _ in fired]
    assert occurrences == sorted(set(occurrences))
    assert all(on_the_sample_schedule(occurrence) for occurrence in occurrences)
    assert [tick.past_due for tick in ticks] == [past_due for _, past_due in fired]
    for tick, occurrence in zip(ticks, occurrences, strict=True):
        assert tick.next_occurrence > occurrence
        assert on_the_sample_schedule(tick.next_occurrence)


def test_sigint_waits_for_the_invocation_in_flight_and_exits_zero(
    storage_connection_string: str, tmp_path: Path
) -> None:
    running = start_host(tmp_path, storage_connection_string)
    replies: list[Response] = []
    call = threading.Thread(target=lambda: replies.append(request(f"{running.base_url}/api/slow?seconds=1")))
    call.start()
    wait_for(lambda: "[slow]" in running.log.read_text(), "the slow invocation to start")

    running.process.send_signal(signal.SIGINT)

    assert running.process.wait(timeout=10) == 0
    call.join(timeout=10)
    assert [(reply.status, reply.body) for reply in replies] == [(200, b"done")]
    assert "Host stopped" in running.log.read_text()


def queue_exists(queue: QueueClient) -> Callable[[], bool]:
    def check() -> bool:
        try:
            queue.get_queue_properties()
        except ResourceNotFoundError:
            return False
        return True

    return check


def visible_contents(queue: QueueClient) -> list[str]:
    try:
        return [message.content for message in queue.peek_messages(max_messages=32)]
    except ResourceNotFoundError:
        return []


def test_one_connection_carries_several_requests_over_http_1_1(host: RunningHost) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", host.local.port, timeout=10)
    try:
        replies, sockets = [], []
        for name in ("a", "b", "c"):
            connection.request("POST", f"/api/echo/{name}", body=b"hi", headers={"x-functions-key": FUNCTION_KEY})
            reply = connection.getresponse()
            replies.append((reply.version, reply.status, json.loads(reply.read())["name"]))
            sockets.append(connection.sock.getsockname() if connection.sock else None)  # None: the host closed it
    finally:
        connection.close()

    assert replies == [(11, 200, "a"), (11, 200, "b"), (11, 200, "c")]
    assert sockets[0] is not None
    assert sockets == [sockets[0]] * 3


def test_a_connection_that_never_sends_a_request_is_closed_by_the_host(host: RunningHost) -> None:
    silent = connect(host.local.port, timeout=5)
    stalled = connect(host.local.port, timeout=5)
    stalled.sendall(b"GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the rest of the head never comes
    try:
        assert closed_by_server_within(silent, HEAD_TIMEOUT_SECONDS + 5)
        assert closed_by_server_within(stalled, 5)
    finally:
        silent.close()
        stalled.close()
    assert request(f"{host.base_url}/api/ping").status == 200


def test_aborted_connections_log_no_traceback(host: RunningHost) -> None:
    tracebacks_before = host.log.read_text().count("Traceback")  # of functions that raised, in earlier tests
    for partial in (b"", b"GET /api/pi", b"POST /api/echo/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"):
        for _ in range(5):
            sock = connect(host.local.port, timeout=5)
            sock.sendall(partial)
            abort(sock)
    sock = connect(host.local.port, timeout=5)
    sock.sendall(b"GET /api/slow?seconds=0.5 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    abort(sock)  # before the answer is written

    wait_for(lambda: "[slow]" in host.log.read_text() and "Executed" in host.log.read_text(), "the slow call to end")
    assert request(f"{host.base_url}/api/ping").status == 200
    assert host.log.read_text().count("Traceback") == tracebacks_before


def test_sigint_does_not_wait_for_idle_clients(storage_connection_string: str, tmp_path: Path) -> None:
    running = start_host(tmp_path, storage_connection_string)
    idle = connect(running.local.port, timeout=5)
    kept_alive = http.client.HTTPConnection("127.0.0.1", running.local.port, timeout=5)
    kept_alive.request("GET", "/api/ping")
    kept_alive.getresponse().read()
    try:
        running.process.send_signal(signal.SIGINT)
        started = time.monotonic()
        code = running.process.wait(timeout=30)
        took = time.monotonic() - started
    finally:
        idle.close()
        kept_alive.close()
        running.local.stop()

    assert code == 0
    assert took < 5

"""A loopback HTTP proxy in front of Azurite's table endpoint that fails a seeded random few percent of requests.

Three kinds of failure, as a flaky network or a busy storage account produces them:
- `dropped`: the connection closes before the request reaches storage (nothing applied);
- `busy`: storage answers 503 ServerBusy (nothing applied; the SDK retries any method on it);
- `lost`: the request is applied, then the connection closes before the answer (the caller cannot know it worked).
A retry of a request that already failed once (same `x-ms-client-request-id`) passes through, so the SDK's own
retries never back off for seconds; what the SDK does not retry (a POST or PATCH whose connection broke) reaches
the service, and the queue's redelivery has to cope with it.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

FAULT_KINDS = ("dropped", "busy", "lost")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "trailer", "upgrade"}
_BUSY_BODY = json.dumps(
    {"odata.error": {"code": "ServerBusy", "message": {"lang": "en-US", "value": "The server is busy."}}}
).encode()


_COUNTERS = ("requests", *FAULT_KINDS)


class FaultProxy:
    """Runs the proxy in its own process, so that relaying requests does not compete with the code under test."""

    def __init__(self, upstream_port: int, *, rate: float, seed: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._enabled = context.Value("b", 0)
        self._counters = context.Array("q", len(_COUNTERS))
        self._ready = context.Queue()
        self._process = context.Process(
            target=_serve,
            args=(upstream_port, rate, seed, self._enabled, self._counters, self._ready),
            name="fault-proxy",
            daemon=True,
        )
        self.port = 0

    def start(self) -> FaultProxy:
        self._process.start()
        self.port = int(self._ready.get(timeout=30))
        return self

    def stop(self) -> None:
        self._process.terminate()
        self._process.join(timeout=10)

    @property
    def enabled(self) -> bool:
        return bool(self._enabled.value)

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._enabled.value = 1 if value else 0

    @property
    def counts(self) -> Counter[str]:
        with self._counters.get_lock():
            return Counter(dict(zip(_COUNTERS, self._counters[:], strict=True)))

    @property
    def faults(self) -> int:
        counts = self.counts
        return sum(counts[kind] for kind in FAULT_KINDS)


def _serve(upstream_port: int, rate: float, seed: int, enabled: Any, counters: Any, ready: Any) -> None:
    relay = _Relay(upstream_port, rate, seed, enabled, counters)
    handler = type("BoundHandler", (_Handler,), {"relay": relay})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    ready.put(server.server_address[1])
    server.serve_forever()


class _Relay:
    """The proxy's state inside its process: the seeded dice, the ids already failed, upstream connections."""

    def __init__(self, upstream_port: int, rate: float, seed: int, enabled: Any, counters: Any) -> None:
        self.upstream_port = upstream_port
        self.rate = rate
        self._enabled = enabled
        self._counters = counters
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._failed_ids: set[str] = set()
        self._local = threading.local()

    def decide(self, request_id: str) -> str | None:
        with self._lock:
            fault = None
            if self._enabled.value and request_id not in self._failed_ids and self._random.random() < self.rate:
                fault = self._random.choice(FAULT_KINDS)
                self._failed_ids.add(request_id)
        with self._counters.get_lock():
            self._counters[0] += 1
            if fault is not None:
                self._counters[_COUNTERS.index(fault)] += 1
        return fault

    def upstream(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = http.client.HTTPConnection(
                "127.0.0.1", self.upstream_port, timeout=60
            )
        return connection

    def forget_upstream(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


class _Handler(BaseHTTPRequestHandler):
    relay: ClassVar[_Relay]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._relay()

    def do_POST(self) -> None:
        self._relay()

    def do_PUT(self) -> None:
        self._relay()

    def do_PATCH(self) -> None:
        self._relay()

    def do_MERGE(self) -> None:
        self._relay()

    def do_DELETE(self) -> None:
        self._relay()

    def do_HEAD(self) -> None:
        self._relay()

    def log_message(self, format: str, *args: object) -> None:
        return

    def _relay(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        fault = self.relay.decide(self.headers.get("x-ms-client-request-id") or "")
        if fault == "dropped":
            self.close_connection = True
            return
        if fault == "busy":
            self._answer(503, [("Content-Type", "application/json"), ("x-ms-error-code", "ServerBusy")], _BUSY_BODY)
            return
        status, headers, content = self._forward(body)
        if fault == "lost":
            self.close_connection = True
            return
        self._answer(status, headers, content)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {name: value for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP}
        for attempt in (1, 2):
            connection = self.relay.upstream()
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                content = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.relay.forget_upstream()
                if attempt == 2:
                    raise
                continue
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-length"}]
            return response.status, kept, content
        raise AssertionError("unreachable")

    def _answer(self, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
        self.send_response_only(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD" and content:
            self.wfile.write(content)

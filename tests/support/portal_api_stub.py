"""A loopback stand-in for the settle-balance API that records the portal's calls and answers canned JSON.

For the portal's own page logic only; the browser tests run the portal against the real function app.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class RecordedCall:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ApiStub:
    url: str = ""
    calls: list[RecordedCall] = field(default_factory=list)
    # route suffix (such as "overview") -> list of (status, body) answered in turn; the last one repeats
    answers: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)

    def answer(self, route: str, body: dict[str, Any], status: int = 200) -> None:
        self.answers.setdefault(route, []).append((status, body))

    def calls_to(self, route: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.path.endswith(f"/{route}")]

    def _reply(self, path: str) -> tuple[int, dict[str, Any]]:
        for route, queue in sorted(self.answers.items(), key=lambda item: -len(item[0])):
            if path.endswith(f"/{route}"):
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return 404, {"title": "Not Found", "status": 404, "detail": f"no stub answer for {path}"}


@contextmanager
def running_api_stub() -> Iterator[ApiStub]:
    stub = ApiStub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            stub.calls.append(RecordedCall(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            status, answer = stub._reply(self.path)
            payload = json.dumps(answer).encode()
            self.send_response(status)
            content_type = "application/json" if status < 400 else "application/problem+json"
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        server.shutdown()
        server.server_close()

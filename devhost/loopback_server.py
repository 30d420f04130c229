"""HTTP/1.1 on 127.0.0.1 for the local host and the portal: uvicorn on h11, with the limits a hostile client meets.

uvicorn brings keep-alive, a listen backlog that holds, framing checked by h11 (a bad Content-Length or chunk size
is a 400 before any app code runs) and a shutdown that closes idle connections at once and waits for requests in
flight. This module adds what uvicorn leaves to the app: a deadline for the request head, an idle timeout while a
body arrives, and a bound on body size.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = Sequence[tuple[str, str]]

LISTEN_BACKLOG = 2048
MAX_CONNECTIONS = 1000
MAX_HEADER_BYTES = 32 * 1024
# The whole request head (request line and headers) must arrive within this, counted from the connection or
# from the previous response on a kept-alive connection.
HEAD_TIMEOUT_SECONDS = 10.0
# While a body arrives, each piece of it must come within this.
BODY_IDLE_TIMEOUT_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
CLOSE = ("Connection", "close")

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")

logger = logging.getLogger("devhost.http")


class BodyRefusedError(Exception):
    """The request body cannot be read: `status` says why (400 framing, 408 stalled, 413 too large); None when the
    client left."""

    def __init__(self, status: int | None) -> None:
        super().__init__(status)
        self.status = status


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, at most `limit` bytes, each piece within BODY_IDLE_TIMEOUT_SECONDS."""
    declared = header(scope, "content-length")
    if declared is not None and header(scope, "transfer-encoding") is not None:
        raise BodyRefusedError(400)  # two framings: a request smuggling attempt (RFC 9112 6.3)
    if declared is not None and declared.isdigit() and int(declared) > limit:  # h11 has refused any other value
        raise BodyRefusedError(413)
    chunks: list[bytes] = []
    total = 0
    while True:
        try:
            message = await asyncio.wait_for(receive(), BODY_IDLE_TIMEOUT_SECONDS)
        except TimeoutError:
            raise BodyRefusedError(408) from None
        if message["type"] == "http.disconnect":
            raise BodyRefusedError(None)
        chunk = bytes(message.get("body", b""))
        total += len(chunk)
        if total > limit:
            raise BodyRefusedError(413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header(scope: Scope, name: str) -> str | None:
    """One request header, its repeated values joined with `, `; None when absent."""
    wanted = name.encode("latin-1")
    values = [value.decode("latin-1") for key, value in scope["headers"] if key == wanted]
    return ", ".join(values) if values else None


def has_body(scope: Scope) -> bool:
    length = header(scope, "content-length")
    return header(scope, "transfer-encoding") is not None or (length is not None and length != "0")


def request_headers(scope: Scope) -> dict[str, str]:
    joined: dict[str, list[str]] = {}
    for key, value in scope["headers"]:
        joined.setdefault(key.decode("latin-1"), []).append(value.decode("latin-1"))
    return {key: ", ".join(values) for key, values in joined.items()}


def valid_headers(headers: Headers) -> bool:
    """Whether every name is an HTTP token and no value holds a line break or another control character."""
    return all(_TOKEN.fullmatch(name) and _FIELD_VALUE.fullmatch(value) for name, value in headers)


async def send_response(send: Send, status: int, headers: Headers, body: bytes) -> None:
    # Whitespace around a value is not part of it (RFC 9110 5.5), and h11 refuses to send it.
    encoded = [(name.encode("latin-1"), value.strip(" \t").encode("latin-1")) for name, value in headers]
    encoded.append((b"Content-Length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": encoded})
    await send({"type": "http.response.body", "body": body})


async def send_plain(send: Send, status: int, text: str, extra: Headers = ()) -> None:
    await send_response(send, status, [("Content-Type", "text/plain; charset=utf-8"), *extra], text.encode())


class _H11WithHeadTimeout(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request head does not arrive in time (slow loris)."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self._stop_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        self._stop_head_timer()
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT_SECONDS, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def _bind(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(LISTEN_BACKLOG)
    except OSError:
        listener.close()
        raise
    return listener


class LoopbackServer:
    """`app` served on 127.0.0.1:`port` (0 picks a free port); the port is bound here, so a busy one fails at once."""

    def __init__(self, app: AsgiApp, port: int) -> None:
        self._socket = _bind(port)
        config = uvicorn.Config(
            app,
            http=_H11WithHeadTimeout,
            loop="asyncio",
            interface="asgi3",
            lifespan="off",
            backlog=LISTEN_BACKLOG,
            limit_concurrency=MAX_CONNECTIONS,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            timeout_keep_alive=KEEP_ALIVE_SECONDS,
            proxy_headers=False,
            server_header=False,
            access_log=False,
            log_config=None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        # Its INFO lines repeat ours; its warnings (a malformed request, the connection limit) stay.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    def serve_forever(self) -> None:
        """Serve in this (the main) thread until SIGINT or SIGTERM; uvicorn then re-raises the signal."""
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def start(self) -> None:
        """Serve on a thread of its own; stop() ends it."""
        self._thread = threading.Thread(target=self.serve_forever, name="loopback-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Refuse new connections, close idle ones, and wait for requests in flight."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join()
        self._socket.close()

"""Raw bytes to a loopback HTTP server, for requests no well-behaved client would send; and what came back."""

from __future__ import annotations

import http.client
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawAnswer:
    """`status` None: the server closed without answering; `timed_out`: it neither answered nor closed in time."""

    status: int | None
    headers: tuple[tuple[str, str], ...]
    body: bytes
    seconds: float
    timed_out: bool

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


def connect(port: int, timeout: float) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_answer(sock: socket.socket, started: float, method: str = "POST") -> RawAnswer:
    response = http.client.HTTPResponse(sock, method=method)
    try:
        response.begin()
        body = response.read()
    except TimeoutError:
        return RawAnswer(None, (), b"", time.monotonic() - started, timed_out=True)
    except (http.client.RemoteDisconnected, ConnectionResetError, http.client.IncompleteRead):
        return RawAnswer(None, (), b"", time.monotonic() - started, timed_out=False)
    return RawAnswer(response.status, tuple(response.getheaders()), body, time.monotonic() - started, timed_out=False)


def exchange(port: int, data: bytes, *, wait: float, method: str = "POST") -> RawAnswer:
    """Send `data` and keep the connection open (as a stalled client would) until an answer, a close or `wait`."""
    started = time.monotonic()
    with connect(port, wait) as sock:
        sock.sendall(data)
        return read_answer(sock, started, method)


def closed_by_server_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes this connection (EOF or reset) before `seconds` pass, reading what it sends."""
    sock.settimeout(seconds)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return False


def abort(sock: socket.socket) -> None:
    """Close with a TCP reset instead of a FIN, as a crashed client or a dropped network does."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def framing_counts(outcomes: dict[str, int | str | None]) -> dict[str, Any]:
    """Counts of the answers to raw requests by name: a status, "hung" (no answer in time) or None (dropped)."""
    statuses = Counter(str(outcome) for outcome in outcomes.values() if isinstance(outcome, int))
    return {
        "requests": len(outcomes),
        "statuses": dict(sorted(statuses.items())),
        "hangs": sum(outcome == "hung" for outcome in outcomes.values()),
        "dropped_without_answer": sum(outcome is None for outcome in outcomes.values()),
    }

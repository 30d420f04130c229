"""Many HTTP calls started at the same instant, each on its own connection, and a count of how each one ended."""

from __future__ import annotations

import http.client
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PreparedCall:
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Tally:
    """How the calls ended: answered (by status), reset or refused by the server, or another error."""

    answered: Counter[int]
    resets: int
    errors: Counter[str]

    @property
    def answered_total(self) -> int:
        return sum(self.answered.values())

    def as_counts(self) -> dict[str, object]:
        return {
            "answered": self.answered_total,
            "statuses": {str(status): count for status, count in sorted(self.answered.items())},
            "resets": self.resets,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(sorted(self.errors.items())),
        }


def _outcome(port: int, call: PreparedCall, start: threading.Barrier, timeout: float) -> int | str:
    start.wait()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(call.method, call.path, body=call.body, headers=call.headers)
        response = connection.getresponse()
        response.read()
        return response.status
    except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):  # RemoteDisconnected is a reset too
        return "reset"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


def fire_at_once(port: int, calls: list[PreparedCall], timeout: float = 60.0) -> Tally:
    """Send every call at once (one thread and one connection each) to 127.0.0.1:`port`, and count the endings."""
    start = threading.Barrier(len(calls))
    with ThreadPoolExecutor(len(calls)) as pool:
        outcomes = list(pool.map(lambda call: _outcome(port, call, start, timeout), calls))
    statuses = Counter(outcome for outcome in outcomes if isinstance(outcome, int))
    other = Counter(outcome for outcome in outcomes if isinstance(outcome, str))
    resets = other.pop("reset", 0)
    return Tally(answered=statuses, resets=resets, errors=other)


def prepared(count: int, make: Callable[[int], PreparedCall]) -> list[PreparedCall]:
    return [make(index) for index in range(count)]

"""Host log format: UTC timestamps, and `[function] [invocation id]` on every line logged during an invocation."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_current_invocation: ContextVar[str] = ContextVar("devhost_invocation", default="")


class _InvocationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.invocation = _current_invocation.get()
        return True


def configure_logging(level: int = logging.INFO) -> None:
    formatter = logging.Formatter("[%(asctime)s.%(msecs)03dZ] %(invocation)s%(message)s", datefmt="%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(_InvocationFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    # The storage SDK logs every poll at INFO; the queue listener reports what matters itself.
    logging.getLogger("azure").setLevel(logging.WARNING)


@contextmanager
def invocation_scope(function_name: str, invocation_id: str) -> Iterator[None]:
    token = _current_invocation.set(f"[{function_name}] [{invocation_id}] ")
    try:
        yield
    finally:
        _current_invocation.reset(token)

"""Calls user functions like the Python worker: sync ones on the caller's thread, async ones on one event loop."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from devhost.app_loader import FunctionSpec
from devhost.logs import invocation_scope

logger = logging.getLogger("devhost.invoker")


@dataclass(frozen=True)
class InvocationContext:
    invocation_id: str
    function_name: str
    function_directory: str
    trace_context: None = None
    retry_context: None = None


class Invoker:
    def __init__(self, function_directory: str) -> None:
        self._function_directory = function_directory
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="devhost-async", daemon=True)
        self._thread.start()

    def invoke(self, spec: FunctionSpec, trigger_value: object, reason: str) -> Any:
        """Run one invocation with its log lines; the function's exception propagates after logging."""
        invocation_id = str(uuid.uuid4())
        kwargs: dict[str, Any] = {spec.binding_name: trigger_value}
        if spec.takes_context:
            kwargs["context"] = InvocationContext(invocation_id, spec.name, self._function_directory)
        with invocation_scope(spec.name, invocation_id):
            logger.info("Executing (Reason='%s')", reason)
            started = time.perf_counter()
            try:
                result = self._call(spec, invocation_id, kwargs)
            except Exception:
                logger.exception("Executed (Failed, Duration=%dms)", _elapsed_ms(started))
                raise
            logger.info("Executed (Succeeded, Duration=%dms)", _elapsed_ms(started))
        return result

    def _call(self, spec: FunctionSpec, invocation_id: str, kwargs: dict[str, Any]) -> Any:
        result = spec.function(**kwargs)
        if not inspect.isawaitable(result):
            return result
        scoped = _in_scope(result, spec.name, invocation_id)
        return asyncio.run_coroutine_threadsafe(scoped, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


async def _in_scope(awaitable: Awaitable[Any], function_name: str, invocation_id: str) -> Any:
    with invocation_scope(function_name, invocation_id):
        return await awaitable


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)

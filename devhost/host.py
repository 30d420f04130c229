"""Wires the app's functions to their listeners, and starts and stops them in order."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from devhost.app_loader import (
    EventGridFunction,
    FunctionSpec,
    HttpFunction,
    QueueFunction,
    TimerFunction,
    import_app,
    index_functions,
)
from devhost.eventgrid import EventGridEndpoint
from devhost.host_config import load_host_config
from devhost.http_server import FunctionHttpServer
from devhost.invoker import Invoker
from devhost.queue_listener import QueueListener
from devhost.settings import apply_settings
from devhost.timers import TimerRunner

logger = logging.getLogger("devhost")


@dataclass
class Host:
    app_dir: Path
    port: int = 7071
    settings_file: Path | None = None
    _server: FunctionHttpServer | None = field(default=None, init=False)
    _serving: bool = field(default=False, init=False)
    _listeners: list[QueueListener] = field(default_factory=list, init=False)
    _timers: list[TimerRunner] = field(default_factory=list, init=False)
    _invoker: Invoker | None = field(default=None, init=False)

    def start(self) -> None:
        """Load settings and the app, then start queue pollers, timers and the HTTP server."""
        loaded = apply_settings(self.app_dir, self.settings_file)
        if loaded is not None:
            logger.info("Loaded app settings from %s", loaded)
        config = load_host_config(self.app_dir)
        specs = index_functions(import_app(self.app_dir))
        self._invoker = Invoker(str(self.app_dir))
        self._server = FunctionHttpServer(
            self.port,
            [spec for spec in specs if isinstance(spec, HttpFunction)],
            self._invoker,
            os.environ["LOCAL_FUNCTION_KEY"],
            config.route_prefix,
            eventgrid=EventGridEndpoint(
                [spec for spec in specs if isinstance(spec, EventGridFunction)],
                self._invoker,
                os.environ["LOCAL_FUNCTION_KEY"],
            ),
            admin_key=os.environ["LOCAL_ADMIN_KEY"],
        )
        self._listeners = [
            QueueListener(spec, config.queues, self._invoker) for spec in specs if isinstance(spec, QueueFunction)
        ]
        self._timers = [TimerRunner(spec, self._invoker) for spec in specs if isinstance(spec, TimerFunction)]
        self._log_functions(specs)
        for listener in self._listeners:
            listener.start()
        for timer in self._timers:
            timer.start()
        self._server.start()
        self._serving = True
        logger.info("Host started on http://127.0.0.1:%d (Ctrl-C to stop)", self._server.port)

    def stop(self) -> None:
        """Stop accepting work, then wait for invocations in flight."""
        started = self._serving
        if started:
            logger.info("Stopping the host; waiting for invocations in flight")
        for listener in self._listeners:
            listener.stop()
        for timer in self._timers:
            timer.stop()
        if self._server is not None:
            self._server.stop()
        for listener in self._listeners:
            listener.join()
        for timer in self._timers:
            timer.join()
        if self._invoker is not None:
            self._invoker.close()
        if started:
            logger.info("Host stopped")

    @property
    def http_port(self) -> int | None:
        return self._server.port if self._server is not None else None

    def _log_functions(self, specs: list[FunctionSpec]) -> None:
        logger.info("Functions:")
        for spec in specs:
            logger.info("    %s: %s", spec.name, self._describe(spec))

    def _describe(self, spec: FunctionSpec) -> str:
        if isinstance(spec, HttpFunction) and self._server is not None:
            methods = f"[{','.join(sorted(spec.methods))}] " if spec.methods else ""
            return (
                f"httpTrigger {methods}http://127.0.0.1:{self._server.port}{self._server.public_route(spec)} "
                f"(authLevel {spec.auth_level})"
            )
        if isinstance(spec, QueueFunction):
            return f"queueTrigger on queue '{spec.queue_name}' (connection {spec.connection_setting})"
        if isinstance(spec, EventGridFunction) and self._server is not None:
            return f"eventGridTrigger {EventGridEndpoint.url_of(f'http://127.0.0.1:{self._server.port}', spec.name)}"
        if isinstance(spec, TimerFunction):
            startup = ", run_on_startup" if spec.run_on_startup else ""
            upcoming = spec.schedule.next_after(datetime.now(UTC)).isoformat()
            return f"timerTrigger schedule '{spec.schedule_text}'{startup}, next {upcoming}"
        return "unknown trigger"

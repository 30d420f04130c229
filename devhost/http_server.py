"""HTTP triggers on loopback: routing, authLevel keys, and HttpRequest / HttpResponse translation."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote

import azure.functions as func

from devhost.loopback_server import (
    CLOSE,
    BodyRefusedError,
    LoopbackServer,
    Receive,
    Scope,
    Send,
    has_body,
    read_body,
    request_headers,
    send_plain,
    send_response,
    valid_headers,
)
from devhost.routing import RouteMatch, Router

if TYPE_CHECKING:
    from devhost.app_loader import HttpFunction
    from devhost.eventgrid import EventGridEndpoint
    from devhost.invoker import Invoker

logger = logging.getLogger("devhost.http")

MAX_REQUEST_BYTES = 100 * 1024 * 1024
MAX_URL_LENGTH = 4096
# Sync functions run on these threads, as the Python worker runs them on its thread pool.
INVOCATION_THREADS = 32
_METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}
# Characters a URL path keeps as they are; anything else (`#` included) is percent-encoded into the request URL.
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"


class FunctionHttpApp:
    """The ASGI side of the host's HTTP triggers: one request in, one function invoked, its answer out."""

    def __init__(
        self,
        functions: list[HttpFunction],
        invoker: Invoker,
        function_key: str,
        route_prefix: str,
        eventgrid: EventGridEndpoint | None = None,
        *,
        admin_key: str | None = None,
    ) -> None:
        self.eventgrid = eventgrid
        self.router: Router[HttpFunction] = Router()
        for function in functions:
            self.router.add(function.route, function.methods, function)
        self.invoker = invoker
        self.function_key = function_key.encode()
        # The host's master key: the only key an admin-level function takes, and one every function takes (as Azure).
        self.admin_key = admin_key.encode() if admin_key else None
        self.route_prefix = route_prefix.strip("/")
        self._threads = ThreadPoolExecutor(INVOCATION_THREADS, thread_name_prefix="devhost-invocation")

    def public_route(self, function: HttpFunction) -> str:
        return "/" + "/".join(part for part in (self.route_prefix, function.route) if part)

    def authorized(self, headers: dict[str, str], params: dict[str, str], auth_level: str = "function") -> bool:
        """Whether the key supplied opens a function of `auth_level`: anonymous none, function the function key or
        the admin key, admin the admin key only (with no admin key configured, admin functions stay closed)."""
        if auth_level == "anonymous":
            return True
        supplied = (headers.get("x-functions-key") or params.get("code") or "").encode()
        is_admin = self.admin_key is not None and hmac.compare_digest(supplied, self.admin_key)
        if auth_level == "admin":
            return is_admin
        return hmac.compare_digest(supplied, self.function_key) or is_admin

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        status, label = await self._dispatch(scope, receive, send)
        if status:
            logger.info("%s %s -> %d (%dms)", scope["method"], label, status, (time.perf_counter() - started) * 1000)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> tuple[int, str]:
        raw_path: bytes = scope["raw_path"]
        query: bytes = scope["query_string"]
        if len(raw_path) + len(query) + 1 > MAX_URL_LENGTH:
            return await _refuse(scope, send, HTTPStatus.REQUEST_URI_TOO_LONG), "(url too long)"
        method: str = scope["method"]
        label = raw_path.decode("latin-1")
        if method not in _METHODS:
            return await _refuse(scope, send, HTTPStatus.NOT_IMPLEMENTED), label
        if self.eventgrid is not None and self.eventgrid.handles(scope["path"]):
            return await self._call_eventgrid(scope, receive, send), label
        route_path = self._strip_prefix(scope["path"])
        match, allowed = (None, frozenset[str]()) if route_path is None else self.router.resolve(route_path, method)
        if match is None and allowed:
            allow = ("Allow", ", ".join(sorted(allowed)))
            return await _refuse(scope, send, HTTPStatus.METHOD_NOT_ALLOWED, allow), label
        if match is None:
            return await _refuse(scope, send, HTTPStatus.NOT_FOUND), label
        return await self._call(scope, receive, send, match), self._label(match.route.target)

    async def _call_eventgrid(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Event Grid's webhook, as the Functions host serves it (/runtime/webhooks/eventgrid?functionName=...)."""
        assert self.eventgrid is not None
        try:
            body = await read_body(scope, receive, MAX_REQUEST_BYTES)
        except BodyRefusedError as refused:
            return 0 if refused.status is None else await _refuse(scope, send, HTTPStatus(refused.status))
        eventgrid = self.eventgrid
        answer = await asyncio.get_running_loop().run_in_executor(
            self._threads,
            lambda: eventgrid.handle(
                scope["method"], scope["path"], scope["query_string"].decode("latin-1"), request_headers(scope), body
            ),
        )
        await send_response(send, answer.status, list(answer.headers.items()), answer.body)
        return answer.status

    def _label(self, function: HttpFunction) -> str:
        return f"{self.public_route(function)} [{function.name}]"

    async def _call(self, scope: Scope, receive: Receive, send: Send, match: RouteMatch[HttpFunction]) -> int:
        function = match.route.target
        headers = request_headers(scope)
        query = scope["query_string"].decode("latin-1")
        params = dict(parse_qsl(query, keep_blank_values=True))
        if not self.authorized(headers, params, function.auth_level):
            return await _refuse(scope, send, HTTPStatus.UNAUTHORIZED)
        try:
            body = await read_body(scope, receive, MAX_REQUEST_BYTES)
        except BodyRefusedError as refused:
            return 0 if refused.status is None else await _refuse(scope, send, HTTPStatus(refused.status))
        request = func.HttpRequest(
            method=scope["method"],
            url=self.request_url(scope),
            headers=headers,
            params=params,
            route_params=match.params,
            body=body,
        )
        reason = f"HTTP {scope['method']} {self._label(function)}"
        try:
            result = await asyncio.get_running_loop().run_in_executor(
                self._threads, self.invoker.invoke, function, request, reason
            )
        except Exception:
            return await _answer(send, HTTPStatus.INTERNAL_SERVER_ERROR)
        return await self._send_result(send, result, function.name)

    @staticmethod
    def request_url(scope: Scope) -> str:
        """The URL the function sees, from the address the host listens on: a client's Host header never shapes it."""
        host, port = scope["server"]
        path = quote(scope["raw_path"].decode("latin-1"), safe=_PATH_SAFE)
        query = scope["query_string"].decode("latin-1")
        return f"http://{host}:{port}{path}" + (f"?{query}" if query else "")

    def _strip_prefix(self, path: str) -> str | None:
        prefix = self.route_prefix
        if not prefix:
            return path
        trimmed = path.lstrip("/")
        if trimmed.lower() == prefix.lower():
            return ""
        if trimmed.lower().startswith(prefix.lower() + "/"):
            return trimmed[len(prefix) + 1 :]
        return None

    async def _send_result(self, send: Send, result: object, function_name: str) -> int:
        if result is None:
            return await _answer(send, HTTPStatus.NO_CONTENT)
        if isinstance(result, str):
            result = func.HttpResponse(result)
        if not isinstance(result, func.HttpResponse):
            logger.error(
                "[%s] returned %s; an HTTP function must return func.HttpResponse or str",
                function_name,
                type(result).__name__,
            )
            return await _answer(send, HTTPStatus.INTERNAL_SERVER_ERROR)
        headers: list[tuple[str, str]] = [
            (name, value) for name, value in result.headers.items() if name.lower() not in _HOP_BY_HOP
        ]
        if not any(name.lower() == "content-type" for name, _ in headers):
            mimetype, charset = result.mimetype, result.charset
            headers.append(
                ("Content-Type", f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype)
            )
        if not valid_headers(headers):
            logger.error("[%s] returned a header that is not valid HTTP (a line break or a bad name)", function_name)
            return await _answer(send, HTTPStatus.INTERNAL_SERVER_ERROR)
        status = int(result.status_code)
        body = b"" if status in {204, 304} else result.get_body()
        await send_response(send, status, headers, body)
        return status


async def _answer(send: Send, status: HTTPStatus, *extra: tuple[str, str]) -> int:
    await send_plain(send, status.value, f"{status.value} {status.phrase}\n", extra)
    return status.value


async def _refuse(scope: Scope, send: Send, status: HTTPStatus, *extra: tuple[str, str]) -> int:
    """An answer given before the body was read: if there is one, the connection closes instead of reading it."""
    return await _answer(send, status, *extra, *((CLOSE,) if has_body(scope) else ()))


class FunctionHttpServer:
    """The HTTP triggers on 127.0.0.1:`port`, on their own thread."""

    def __init__(
        self,
        port: int,
        functions: list[HttpFunction],
        invoker: Invoker,
        function_key: str,
        route_prefix: str,
        *,
        eventgrid: EventGridEndpoint | None = None,
        admin_key: str | None = None,
    ) -> None:
        self.app = FunctionHttpApp(functions, invoker, function_key, route_prefix, eventgrid, admin_key=admin_key)
        self._server = LoopbackServer(self.app, port)

    @property
    def port(self) -> int:
        return self._server.port

    def public_route(self, function: HttpFunction) -> str:
        return self.app.public_route(function)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        """Refuse new connections, close idle ones, wait for invocations in flight."""
        self._server.stop()
        self.app.close()

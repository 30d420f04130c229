"""HTTP triggers on loopback: routing, authLevel keys, and HttpRequest / HttpResponse translation."""

from __future__ import annotations

import hmac
import logging
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

import azure.functions as func

from devhost.routing import Router

if TYPE_CHECKING:
    from devhost.app_loader import HttpFunction
    from devhost.eventgrid import EventGridEndpoint
    from devhost.invoker import Invoker

logger = logging.getLogger("devhost.http")

MAX_REQUEST_BYTES = 100 * 1024 * 1024
MAX_URL_LENGTH = 4096
_HOP_BY_HOP = {"content-length", "transfer-encoding", "connection", "keep-alive"}


class RequestTooLargeError(Exception):
    pass


class FunctionHttpServer(ThreadingHTTPServer):
    # Non-daemon request threads let server_close() wait for in-flight invocations on shutdown.
    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        port: int,
        functions: list[HttpFunction],
        invoker: Invoker,
        function_key: str,
        route_prefix: str,
        *,
        eventgrid: EventGridEndpoint | None = None,  # Event Grid hook
    ) -> None:
        self.eventgrid = eventgrid  # Event Grid hook
        self.router: Router[HttpFunction] = Router()
        for function in functions:
            self.router.add(function.route, function.methods, function)
        self.invoker = invoker
        self.function_key = function_key.encode()
        self.route_prefix = route_prefix.strip("/")
        super().__init__(("127.0.0.1", port), _FunctionRequestHandler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def public_route(self, function: HttpFunction) -> str:
        return "/" + "/".join(part for part in (self.route_prefix, function.route) if part)

    def authorized(self, headers: dict[str, str], params: dict[str, str]) -> bool:
        supplied = headers.get("x-functions-key") or params.get("code") or ""
        return hmac.compare_digest(supplied.encode(), self.function_key)


class _FunctionRequestHandler(BaseHTTPRequestHandler):
    server: FunctionHttpServer
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_OPTIONS(self) -> None:
        self._handle()

    def _handle(self) -> None:
        started = time.perf_counter()
        try:
            status, label = self._dispatch()
        except (BrokenPipeError, ConnectionResetError):
            return
        logger.info("%s %s -> %d (%dms)", self.command, label, status, (time.perf_counter() - started) * 1000)

    def _dispatch(self) -> tuple[int, str]:
        if len(self.path) > MAX_URL_LENGTH:
            return self._send_status(HTTPStatus.REQUEST_URI_TOO_LONG), "(url too long)"
        url = urlsplit(self.path)
        if self.server.eventgrid is not None and self.server.eventgrid.handles(url.path):  # Event Grid hook
            return self._call_eventgrid(self.server.eventgrid, url.path, url.query), url.path
        route_path = self._strip_prefix(unquote(url.path))
        match, allowed = (
            (None, frozenset[str]()) if route_path is None else self.server.router.resolve(route_path, self.command)
        )
        if match is None and allowed:
            allow = {"Allow": ", ".join(sorted(allowed))}
            return self._send_status(HTTPStatus.METHOD_NOT_ALLOWED, allow), url.path
        if match is None:
            return self._send_status(HTTPStatus.NOT_FOUND), url.path
        function = match.route.target
        label = f"{self.server.public_route(function)} [{function.name}]"
        return self._call(function, match.params, url.query, label), label

    def _call(self, function: HttpFunction, route_params: dict[str, str], query: str, label: str) -> int:
        headers = {name.lower(): ", ".join(self.headers.get_all(name) or []) for name in self.headers}
        params = dict(parse_qsl(query, keep_blank_values=True))
        if function.auth_level != "anonymous" and not self.server.authorized(headers, params):
            return self._send_status(HTTPStatus.UNAUTHORIZED)
        try:
            body = self._read_body()
        except RequestTooLargeError:
            return self._send_status(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.port}"
        request = func.HttpRequest(
            method=self.command,
            url=f"http://{host}{self.path}",
            headers=headers,
            params=params,
            route_params=route_params,
            body=body,
        )
        try:
            result = self.server.invoker.invoke(function, request, f"HTTP {self.command} {label}")
        except Exception:
            return self._send_status(HTTPStatus.INTERNAL_SERVER_ERROR)
        return self._send_result(result, function.name)

    def _call_eventgrid(self, eventgrid: EventGridEndpoint, path: str, query: str) -> int:  # Event Grid hook
        try:
            body = self._read_body()
        except RequestTooLargeError:
            return self._send_status(HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        headers = {name.lower(): ", ".join(self.headers.get_all(name) or []) for name in self.headers}
        answer = eventgrid.handle(self.command, path, query, headers, body)
        return self._send(answer.status, list(answer.headers.items()), answer.body)

    def _strip_prefix(self, path: str) -> str | None:
        prefix = self.server.route_prefix
        if not prefix:
            return path
        trimmed = path.lstrip("/")
        if trimmed.lower() == prefix.lower():
            return ""
        if trimmed.lower().startswith(prefix.lower() + "/"):
            return trimmed[len(prefix) + 1 :]
        return None

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.close_connection = True
            raise RequestTooLargeError
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_REQUEST_BYTES:
                self.close_connection = True
                raise RequestTooLargeError
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _send_result(self, result: object, function_name: str) -> int:
        if result is None:
            return self._send_status(HTTPStatus.NO_CONTENT)
        if isinstance(result, str):
            result = func.HttpResponse(result)
        if not isinstance(result, func.HttpResponse):
            logger.error(
                "[%s] returned %s; an HTTP function must return func.HttpResponse or str",
                function_name,
                type(result).__name__,
            )
            return self._send_status(HTTPStatus.INTERNAL_SERVER_ERROR)
        headers: list[tuple[str, str]] = [
            (name, value) for name, value in result.headers.items() if name.lower() not in _HOP_BY_HOP
        ]
        if not any(name.lower() == "content-type" for name, _ in headers):
            mimetype, charset = result.mimetype, result.charset
            headers.append(
                ("Content-Type", f"{mimetype}; charset={charset}" if mimetype.startswith("text/") else mimetype)
            )
        return self._send(int(result.status_code), headers, result.get_body())

    def _send_status(self, status: HTTPStatus, extra: dict[str, str] | None = None) -> int:
        headers = [("Content-Type", "text/plain; charset=utf-8"), *(extra or {}).items()]
        return self._send(status.value, headers, f"{status.value} {status.phrase}\n".encode())

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> int:
        if status in {204, 304}:
            body = b""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Request lines carry `?code=` keys; _handle logs each request without the query instead."""

    def log_message(self, format: str, *args: Any) -> None:
        logger.warning("HTTP server: %s", format % args)

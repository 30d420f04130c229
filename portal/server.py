"""The portal over HTTP/1.1 on loopback: uvicorn (h11) with the local host's connection limits and timeouts."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from http.cookies import CookieError, SimpleCookie

from devhost.loopback_server import (
    CLOSE,
    BodyRefusedError,
    LoopbackServer,
    Receive,
    Scope,
    Send,
    has_body,
    read_body,
    send_plain,
    send_response,
    valid_headers,
)
from portal.app import PortalApp, Request, Response

MAX_FORM_BYTES = 64 * 1024
# Pages call the API synchronously; this many are served at once, the others wait their turn.
PAGE_THREADS = 32
_METHODS = {"GET", "HEAD", "POST"}
_REFUSALS = {400: "bad request", 408: "the form did not arrive in time", 413: "form too large"}
logger = logging.getLogger("portal")


class PortalAsgi:
    """ASGI in front of PortalApp.handle, which runs on a thread pool."""

    def __init__(self, app: PortalApp) -> None:
        self.app = app
        self._threads = ThreadPoolExecutor(PAGE_THREADS, thread_name_prefix="portal-page")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method: str = scope["method"]
        if method not in _METHODS:
            await send_plain(send, 501, "unsupported method", [("Allow", "GET, HEAD, POST"), *_close_if_body(scope)])
            return
        form: dict[str, str] = {}
        if method == "POST":
            try:
                raw = await read_body(scope, receive, MAX_FORM_BYTES)
            except BodyRefusedError as refused:
                if refused.status is not None:
                    await send_plain(send, refused.status, _REFUSALS[refused.status], [CLOSE])
                return
            form = _first_values(urllib.parse.parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True))
        query = scope["query_string"].decode("latin-1")
        request = Request(
            method="GET" if method == "HEAD" else method,
            path=scope["path"],
            query=_first_values(urllib.parse.parse_qs(query, keep_blank_values=True)),
            form=form,
            cookies=_cookies(scope),
        )
        response = await asyncio.get_running_loop().run_in_executor(self._threads, self._handle, request)
        headers = [("Content-Type", response.content_type), *response.headers]
        await send_response(send, response.status, headers, response.body)
        logger.info("%s %s -> %d", method, scope["path"], response.status)

    def _handle(self, request: Request) -> Response:
        try:
            response = self.app.handle(request)
        except Exception:
            logger.exception("portal page %s %s failed", request.method, request.path)
            return _internal_error()
        if not valid_headers([("Content-Type", response.content_type), *response.headers]):
            logger.error("portal page %s %s made a header that is not valid HTTP", request.method, request.path)
            return _internal_error()
        return response

    def close(self) -> None:
        self._threads.shutdown(wait=True)


class PortalServer:
    """The portal on 127.0.0.1:`port` (0 picks a free port); the port is bound when this is made."""

    def __init__(self, address: tuple[str, int], app: PortalApp) -> None:
        host, port = address
        if host != "127.0.0.1":
            raise ValueError("the portal listens on 127.0.0.1 only")
        self.app = app
        self._asgi = PortalAsgi(app)
        self._server = LoopbackServer(self._asgi, port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (raised as KeyboardInterrupt once requests in flight are answered) or SIGTERM."""
        self._server.serve_forever()

    def start(self) -> None:
        self._server.start()

    def server_close(self) -> None:
        self._server.stop()
        self._asgi.close()


def _internal_error() -> Response:
    return Response(500, b"internal error: see the portal's log", "text/plain; charset=utf-8")


def _close_if_body(scope: Scope) -> list[tuple[str, str]]:
    return [CLOSE] if has_body(scope) else []


def _first_values(values: dict[str, list[str]]) -> dict[str, str]:
    return {name: entries[0] for name, entries in values.items() if entries}


def _cookies(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load("; ".join(value.decode("latin-1") for name, value in scope["headers"] if name == b"cookie"))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}

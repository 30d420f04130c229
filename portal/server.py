"""The portal on the standard library's threading HTTP server, bound to loopback."""

from __future__ import annotations

import logging
import urllib.parse
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from portal.app import PortalApp, Request, Response

MAX_FORM_BYTES = 64 * 1024
logger = logging.getLogger("portal")


class PortalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: PortalApp) -> None:
        super().__init__(address, PortalRequestHandler)
        self.app = app

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class PortalRequestHandler(BaseHTTPRequestHandler):
    server: PortalServer
    server_version = "pastdue-portal"

    def version_string(self) -> str:
        return self.server_version

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        form: dict[str, str] = {}
        if method == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_FORM_BYTES:
                self._send(Response(413, b"form too large", "text/plain; charset=utf-8"), method)
                return
            raw = self.rfile.read(length).decode("utf-8", errors="replace")
            form = _first_values(urllib.parse.parse_qs(raw, keep_blank_values=True))
        request = Request(
            method="GET" if method == "HEAD" else method,
            path=urllib.parse.unquote(parsed.path),
            query=_first_values(urllib.parse.parse_qs(parsed.query, keep_blank_values=True)),
            form=form,
            cookies=_cookies(self.headers.get("Cookie", "")),
        )
        try:
            response = self.server.app.handle(request)
        except Exception:
            logger.exception("portal page %s %s failed", method, parsed.path)
            response = Response(500, b"internal error: see the portal's log", "text/plain; charset=utf-8")
        self._send(response, method)

    def _send(self, response: Response, method: str) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        logger.info(format, *args)


def _first_values(values: dict[str, list[str]]) -> dict[str, str]:
    return {name: entries[0] for name, entries in values.items() if entries}


def _cookies(header: str) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}

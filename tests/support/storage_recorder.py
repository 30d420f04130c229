"""A loopback TLS server that answers just enough of the Table and Queue REST APIs and records what it was sent.

Azurite's OAuth mode needs signed tokens from a real issuer; this records the `Authorization` header instead, so a
test can check that the app's storage clients sign with the injected Entra credential (the SDKs send a bearer
token only over https, hence TLS with the ACS stand-in's throwaway CA: point `REQUESTS_CA_BUNDLE` at `ca_bundle_path`).
`POST /Tables` answers 409 TableAlreadyExists, `PUT /<queue>` 204, `POST /<queue>/messages` 201 with one message.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.support.acs_standin import _TlsServer, _write_certificates

if TYPE_CHECKING:
    from types import TracebackType

_QUEUE_MESSAGE = (
    '<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage>'
    "<MessageId>5974b586-0df3-4e2d-ad0c-18e3892bfca2</MessageId>"
    "<InsertionTime>Mon, 30 Nov 2026 09:00:00 GMT</InsertionTime>"
    "<ExpirationTime>Mon, 07 Dec 2026 09:00:00 GMT</ExpirationTime>"
    "<PopReceipt>AgAAAAMAAAAAAAAA</PopReceipt>"
    "<TimeNextVisible>Mon, 30 Nov 2026 09:00:00 GMT</TimeNextVisible>"
    "</QueueMessage></QueueMessagesList>"
)
_TABLE_EXISTS = (
    '{"odata.error":{"code":"TableAlreadyExists","message":{"lang":"en-US","value":"The table already exists."}}}'
)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    authorization: str
    body: bytes


class StorageRecorder:
    """Starts on 127.0.0.1 and a free port; `endpoint` is the account URL (path-style, as for Azurite)."""

    def __init__(self) -> None:
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._certificates = tempfile.TemporaryDirectory(prefix="storage-recorder-")
        self.ca_bundle_path, certificate_path, key_path = _write_certificates(Path(self._certificates.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate_path, key_path)
        self._server = _TlsServer(("127.0.0.1", 0), self._handler(), context)
        self.endpoint = f"https://127.0.0.1:{self._server.server_address[1]}/recorded"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="storage-recorder", daemon=True
        )

    def __enter__(self) -> StorageRecorder:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._certificates.cleanup()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                path = self._receive()
                if path.endswith("/Tables"):
                    self._answer(409, _TABLE_EXISTS.encode(), "application/json;odata=minimalmetadata")
                elif path.endswith("/messages"):
                    self._answer(201, _QUEUE_MESSAGE.encode(), "application/xml")
                else:
                    self._answer(404, b"", "text/plain")

            def do_PUT(self) -> None:
                self._receive()
                self._answer(204, b"", "text/plain")

            def _receive(self) -> str:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                recorder._record(RecordedRequest(self.command, path, self.headers.get("Authorization", ""), body))
                return path

            def _answer(self, status: int, content: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("x-ms-request-id", "recorded")
                self.send_header("x-ms-version", "2019-02-02")
                self.end_headers()
                self.wfile.write(content)

        return Handler

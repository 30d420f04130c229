"""A loopback stand-in of the Azure Communication Services Email REST API, for tests.

The SDK's `from_connection_string` always turns the endpoint into https (it keeps only the host), so the
stand-in speaks TLS with a certificate from a throwaway CA made at start-up. Requests are authorised by the
HMAC signature of the access key, or, when the stand-in is given a `bearer_token`, by that Entra ID token (the
`ACS_ENDPOINT` + managed identity mode). Point the SDK at that CA with
`REQUESTS_CA_BUNDLE=<standin.ca_bundle_path>` (requests reads it when verification is on), in this process
or in a child process such as the Functions host.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import ssl
import tempfile
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    import socket
    from types import TracebackType

API_VERSION = "2025-09-01"
_SIGNED_HEADERS = "x-ms-date;host;x-ms-content-sha256"
_MAX_CLOCK_SKEW = timedelta(minutes=15)


@dataclass(frozen=True)
class Accepted:
    """202; the operation reports Running for `running_polls` polls, then Succeeded."""

    running_polls: int = 0


@dataclass(frozen=True)
class Throttled:
    """429 Too Many Requests with `Retry-After`."""

    retry_after_seconds: int = 1


@dataclass(frozen=True)
class ErrorResponse:
    """An error status for the send request itself (500 by default)."""

    status: int = 500
    code: str = "InternalServerError"


@dataclass(frozen=True)
class FailedOperation:
    """202, then the operation ends as Failed with this error."""

    code: str = "EmailDroppedAllRecipientsSuppressed"
    message: str = "The email was not delivered."


ScriptedAnswer = Accepted | Throttled | ErrorResponse | FailedOperation


@dataclass(frozen=True)
class ReceivedSend:
    """One accepted send request: the Operation-Id header and the parsed JSON body."""

    operation_id: str
    message: dict[str, Any]


@dataclass
class _Operation:
    operation_id: str
    running_polls: int
    final_status: str
    error: dict[str, str] | None = None


@dataclass
class _State:
    access_key: bytes
    answers: deque[ScriptedAnswer] = field(default_factory=deque)
    operations: dict[str, _Operation] = field(default_factory=dict)
    accepted: list[ReceivedSend] = field(default_factory=list)
    delivered: list[ReceivedSend] = field(default_factory=list)
    unauthorized_requests: int = 0
    bearer_token: str | None = None
    bearer_requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class AcsEmailStandin:
    """Starts the stand-in on 127.0.0.1 and a free port; use as a context manager."""

    def __init__(self, *, bearer_token: str | None = None) -> None:
        self.access_key = base64.b64encode(secrets.token_bytes(32)).decode()
        self._state = _State(access_key=base64.b64decode(self.access_key), bearer_token=bearer_token)
        self._certificates = tempfile.TemporaryDirectory(prefix="acs-standin-")
        certificate_directory = Path(self._certificates.name)
        self.ca_bundle_path, certificate_path, key_path = _write_certificates(certificate_directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate_path, key_path)
        self._server = _TlsServer(("127.0.0.1", 0), _handler_for(self._state), context)
        self.endpoint = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.connection_string = f"endpoint={self.endpoint}/;accesskey={self.access_key}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="acs-standin", daemon=True
        )

    def __enter__(self) -> AcsEmailStandin:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._certificates.cleanup()

    def connection_string_with_key(self, access_key: str) -> str:
        return f"endpoint={self.endpoint}/;accesskey={access_key}"

    def enqueue(self, *answers: ScriptedAnswer) -> None:
        """Answer the next send requests with these, in order; afterwards every send is Accepted."""
        with self._state.lock:
            self._state.answers.extend(answers)

    @property
    def accepted(self) -> list[ReceivedSend]:
        """Every send request answered 202, repeats of an operation id included."""
        with self._state.lock:
            return list(self._state.accepted)

    @property
    def delivered(self) -> list[ReceivedSend]:
        """The messages the service would deliver: one per succeeded operation id."""
        with self._state.lock:
            return list(self._state.delivered)

    @property
    def unauthorized_requests(self) -> int:
        with self._state.lock:
            return self._state.unauthorized_requests

    @property
    def bearer_requests(self) -> int:
        """Requests authorised by the bearer token."""
        with self._state.lock:
            return self._state.bearer_requests


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections from the SDK's pool would otherwise block server_close().
    block_on_close = False

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext,
    ) -> None:
        self._ssl_context = ssl_context
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        # The handshake then happens in the handler thread, so one stuck client cannot block accept().
        return self._ssl_context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False), address


def _handler_for(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(_AcsRequestHandler):
        shared_state = state

    return Handler


class _AcsRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    shared_state: _State

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self._read_body()
        if not self._authorized(body):
            return
        path = urlsplit(self.path).path
        if path != "/emails:send":
            self._send_json(404, {"error": {"code": "NotFound", "message": "Unknown path."}})
            return
        try:
            message = json.loads(body)
        except ValueError:
            self._send_json(400, {"error": {"code": "InvalidRequest", "message": "Body is not JSON."}})
            return
        operation_id = self.headers.get("Operation-Id") or str(uuid.uuid4())
        self._answer_send(operation_id, message)

    def do_GET(self) -> None:
        body = self._read_body()
        if not self._authorized(body):
            return
        path = urlsplit(self.path).path
        prefix = "/emails/operations/"
        state = self.shared_state
        with state.lock:
            operation = state.operations.get(path.removeprefix(prefix)) if path.startswith(prefix) else None
            if operation is None:
                status_payload: dict[str, Any] | None = None
            elif operation.running_polls > 0:
                operation.running_polls -= 1
                status_payload = {"id": operation.operation_id, "status": "Running", "error": None}
            else:
                status_payload = {
                    "id": operation.operation_id,
                    "status": operation.final_status,
                    "error": operation.error,
                }
        if status_payload is None:
            self._send_json(404, {"error": {"code": "NotFound", "message": "Unknown operation."}})
            return
        self._send_json(200, status_payload, {"Retry-After": "0"})

    def _answer_send(self, operation_id: str, message: dict[str, Any]) -> None:
        state = self.shared_state
        with state.lock:
            existing = state.operations.get(operation_id)
            if existing is not None:
                answer: ScriptedAnswer = Accepted()
            else:
                answer = state.answers.popleft() if state.answers else Accepted()
            if isinstance(answer, Accepted | FailedOperation):
                self._accept(state, existing, operation_id, message, answer)
        match answer:
            case Throttled(retry_after_seconds=seconds):
                self._send_json(
                    429,
                    {"error": {"code": "TooManyRequests", "message": "Too many requests."}},
                    {"Retry-After": str(seconds)},
                )
            case ErrorResponse(status=status, code=code):
                self._send_json(status, {"error": {"code": code, "message": "Scripted error."}})
            case _:
                self._send_json(
                    202,
                    {"id": operation_id, "status": "Running", "error": None},
                    {"Operation-Location": self._operation_location(operation_id), "Retry-After": "0"},
                )

    @staticmethod
    def _accept(
        state: _State,
        existing: _Operation | None,
        operation_id: str,
        message: dict[str, Any],
        answer: Accepted | FailedOperation,
    ) -> None:
        received = ReceivedSend(operation_id=operation_id, message=message)
        state.accepted.append(received)
        # Like the service, an operation id names one operation: a repeat reports it again, sends nothing.
        if existing is not None:
            return
        if isinstance(answer, FailedOperation):
            error = {"code": answer.code, "message": answer.message}
            state.operations[operation_id] = _Operation(operation_id, 0, "Failed", error)
            return
        state.operations[operation_id] = _Operation(operation_id, answer.running_polls, "Succeeded")
        state.delivered.append(received)

    def _operation_location(self, operation_id: str) -> str:
        host = self.headers.get("Host", "")
        return f"https://{host}/emails/operations/{operation_id}?api-version={API_VERSION}"

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self, body: bytes) -> bool:
        if _signature_is_valid(self.command, self.path, self.headers, body, self.shared_state.access_key):
            return True
        token = self.shared_state.bearer_token
        if token is not None and hmac.compare_digest(self.headers.get("Authorization", ""), f"Bearer {token}"):
            with self.shared_state.lock:
                self.shared_state.bearer_requests += 1
            return True
        with self.shared_state.lock:
            self.shared_state.unauthorized_requests += 1
        self._send_json(401, {"error": {"code": "Denied", "message": "Denied by the resource provider."}})
        return False

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        content = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(content)


def _signature_is_valid(verb: str, path_and_query: str, headers: Any, body: bytes, access_key: bytes) -> bool:
    date = headers.get("x-ms-date", "")
    content_hash = headers.get("x-ms-content-sha256", "")
    host = headers.get("Host", "")
    authorization = headers.get("Authorization", "")
    if not (date and content_hash and host and authorization):
        return False
    if not hmac.compare_digest(content_hash, base64.b64encode(hashlib.sha256(body).digest()).decode()):
        return False
    try:
        signed_at = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return False
    if signed_at.tzinfo is None or abs(datetime.now(UTC) - signed_at) > _MAX_CLOCK_SKEW:
        return False
    string_to_sign = f"{verb.upper()}\n{path_and_query}\n{date};{host};{content_hash}"
    signature = base64.b64encode(hmac.new(access_key, string_to_sign.encode(), hashlib.sha256).digest()).decode()
    expected = f"HMAC-SHA256 SignedHeaders={_SIGNED_HEADERS}&Signature={signature}"
    return hmac.compare_digest(authorization, expected)


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pastdue ACS stand-in test CA")])
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(key_cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = directory / "ca.pem"
    certificate_path = directory / "server.pem"
    key_path = directory / "server.key"
    ca_path.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    certificate_path.write_bytes(server_certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, certificate_path, key_path


def _key_usage(*, key_cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )

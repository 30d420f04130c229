from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest

import devhost.loopback_server as loopback
from devhost.http_server import FunctionHttpApp
from devhost.loopback_server import BodyRefusedError, Message, read_body, valid_headers


def scope(*headers: tuple[bytes, bytes], raw_path: bytes = b"/api/x", query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "server": ("127.0.0.1", 7071),
        "raw_path": raw_path,
        "query_string": query,
        "headers": list(headers),
    }


def receiving(*messages: Message) -> Any:
    queue = list(messages)

    async def receive() -> Message:
        if not queue:
            await asyncio.sleep(3600)
        return queue.pop(0)

    return receive


def refusal(request: dict[str, Any], *messages: Message, limit: int = 10) -> int | None:
    with pytest.raises(BodyRefusedError) as refused:
        asyncio.run(read_body(request, receiving(*messages), limit))
    return refused.value.status


def test_the_request_url_comes_from_the_listening_address_not_the_host_header() -> None:
    request = scope((b"host", b"evil.example/api/accounts/other/overview#"), raw_path=b"/api/accounts/a/overview")

    assert FunctionHttpApp.request_url(request) == "http://127.0.0.1:7071/api/accounts/a/overview"


def test_a_hash_in_the_path_is_escaped_so_the_url_path_is_the_whole_path() -> None:
    url = FunctionHttpApp.request_url(scope(raw_path=b"/api/accounts/a#/../b/overview", query=b"code=k"))

    assert urlsplit(url).path == "/api/accounts/a%23/../b/overview"
    assert urlsplit(url).query == "code=k"


def test_a_body_arrives_in_pieces_up_to_the_limit() -> None:
    pieces = ({"type": "http.request", "body": b"12345", "more_body": True}, {"type": "http.request", "body": b"678"})

    assert asyncio.run(read_body(scope(), receiving(*pieces), 10)) == b"12345678"


def test_a_body_over_the_limit_is_refused_as_declared_or_as_received() -> None:
    assert refusal(scope((b"content-length", b"11"))) == 413
    chunks = [{"type": "http.request", "body": b"123456", "more_body": True}] * 2
    assert refusal(scope((b"transfer-encoding", b"chunked")), *chunks) == 413


def test_two_framings_at_once_are_refused() -> None:
    assert refusal(scope((b"content-length", b"2"), (b"transfer-encoding", b"chunked"))) == 400


def test_a_body_that_stops_is_a_408_and_a_client_that_left_has_no_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loopback, "BODY_IDLE_TIMEOUT_SECONDS", 0.05)

    assert refusal(scope(), {"type": "http.request", "body": b"12", "more_body": True}) == 408
    assert refusal(scope(), {"type": "http.disconnect"}) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("Location", "/a\r\nSet-Cookie: x=1"), ("Location", "/a\nb"), ("X", "nul\x00"), ("Bad Name", "v"), ("", "v")],
)
def test_a_header_with_a_line_break_or_a_bad_name_is_not_valid(name: str, value: str) -> None:
    assert not valid_headers([(name, value)])
    assert valid_headers([("Location", "/accounts?x=1"), ("X-Empty", "")])


def key_app(admin_key: str | None = "the-admin-key") -> FunctionHttpApp:
    return FunctionHttpApp([], invoker=None, function_key="the-function-key", route_prefix="api", admin_key=admin_key)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("auth_level", "key", "opens"),
    [
        ("admin", "the-admin-key", True),
        ("admin", "the-function-key", False),
        ("admin", "", False),
        ("function", "the-function-key", True),
        ("function", "the-admin-key", True),
        ("function", "wrong", False),
        ("anonymous", "", True),
    ],
)
def test_an_admin_level_function_takes_only_the_admin_key_and_a_function_level_one_takes_either(
    auth_level: str, key: str, opens: bool
) -> None:
    app = key_app()

    assert app.authorized({"x-functions-key": key} if key else {}, {}, auth_level) is opens
    assert app.authorized({}, {"code": key} if key else {}, auth_level) is opens


def test_without_an_admin_key_admin_level_functions_stay_closed() -> None:
    app = key_app(admin_key=None)

    assert not app.authorized({"x-functions-key": ""}, {}, "admin")
    assert not app.authorized({"x-functions-key": "the-function-key"}, {}, "admin")

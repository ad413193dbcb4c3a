"""The http kind against a real ThreadingHTTPServer on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.kinds.http import invoke, validate_config


class FakeServer(ThreadingHTTPServer):
    requests: list[dict[str, Any]]
    release: threading.Event


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        self.server.requests.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "raw": raw}
        )
        if self.path.startswith("/fail"):
            self.reply(500, b"database exploded", "text/plain")
        elif self.path.startswith("/slow"):
            self.server.release.wait(5)
            with contextlib.suppress(OSError):  # the client gave up long ago
                self.reply(200, b"{}", "application/json")
        elif self.path.startswith("/text"):
            self.reply(200, "héllo".encode(), "text/plain; charset=utf-8")
        elif self.path.startswith("/html"):
            self.reply(200, b"<html>hi</html>", "text/html")
        elif self.path.startswith("/deep"):
            self.reply(200, b"[" * 5000 + b"]" * 5000, "application/json")
        elif self.path.startswith("/created"):
            self.reply(201, b'{"id": 7}', "application/json")
        else:
            body = json.loads(raw) if raw else None
            echo = {"method": self.command, "path": self.path, "body": body}
            self.reply(200, json.dumps(echo).encode(), "application/json")

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    httpd = FakeServer(("127.0.0.1", 0), Handler)
    httpd.requests = []
    httpd.release = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def base(server: FakeServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def call(config: dict[str, Any], params: dict[str, Any] | None = None, timeout: float = 5) -> Any:
    spec = ToolSpec(name="h", kind="http", config=config, timeout_seconds=timeout)
    return asyncio.run(invoke(spec, params or {}))


def test_get_quotes_url_params_and_sends_the_rest_as_the_query(base: str) -> None:
    result = call(
        {"url": base + "/items/{name}?page={page}"},
        {"name": "a b/../c?x=1#y", "page": 2, "extra": "z&w", "unset": None},
    )
    assert result["status"] == 200
    assert result["body"]["method"] == "GET"
    assert result["body"]["path"] == "/items/a%20b%2F..%2Fc%3Fx%3D1%23y?page=2&extra=z%26w"


def test_post_without_a_body_template_sends_the_params_as_json(
    base: str, server: FakeServer
) -> None:
    params = {"name": "x", "tags": ["a", "b"], "n": 3}
    result = call({"method": "POST", "url": base + "/api"}, params)
    assert result == {"status": 200, "body": {"method": "POST", "path": "/api", "body": params}}
    assert server.requests[0]["headers"]["Content-Type"] == "application/json"


def test_a_body_template_keeps_types_for_whole_placeholders_and_drops_absent_ones(
    base: str,
) -> None:
    config = {
        "method": "PUT",
        "url": base + "/api",
        "body": {
            "name": "{name}",
            "count": "{count}",
            "greeting": "hello {name}, {count}",
            "fixed": [1, "{count}", "{absent}"],
            "optional": "{absent}",
        },
    }
    result = call(config, {"name": "ada", "count": 3})
    assert result["body"]["body"] == {
        "name": "ada",
        "count": 3,
        "greeting": "hello ada, 3",
        "fixed": [1, 3],
    }


def test_a_null_body_sends_nothing(base: str, server: FakeServer) -> None:
    call({"method": "POST", "url": base + "/api", "body": None}, {"a": 1})
    assert server.requests[0]["raw"] == b""


def test_every_request_carries_the_steps_idempotency_key_in_its_header(
    base: str, server: FakeServer
) -> None:
    config = {"method": "POST", "url": base + "/api", "headers": {"idempotency-key": "fixed"}}
    spec = ToolSpec(name="h", kind="http", config=config, timeout_seconds=5)
    for _ in range(2):
        asyncio.run(invoke(spec, {"a": 1}, "0b8f6c1e-4c2a-4a53-9a6e-7c1d5f2e9b30"))
    keys = [
        [v for k, v in r["headers"].items() if k.lower() == "idempotency-key"]
        for r in server.requests
    ]
    # The step's key replaces one the tool author configured: a fixed key would merge calls.
    assert keys == [["0b8f6c1e-4c2a-4a53-9a6e-7c1d5f2e9b30"]] * 2
    call({"url": base + "/api"})  # no key given (a call outside a run): no header
    assert "Idempotency-Key" not in server.requests[-1]["headers"]


def test_a_server_error_is_a_tool_error_with_status_and_body(base: str) -> None:
    with pytest.raises(ToolError, match="HTTP 500 from GET .*/fail: database exploded") as caught:
        call({"url": base + "/fail"})
    assert caught.value.details == {"status": 500, "body": "database exploded"}


def test_ok_status_decides_which_statuses_succeed(base: str) -> None:
    assert call({"url": base + "/created", "ok_status": [201]}) == {
        "status": 201,
        "body": {"id": 7},
    }
    with pytest.raises(ToolError, match="HTTP 200"):
        call({"url": base + "/api", "ok_status": [201]})
    assert call({"url": base + "/fail", "ok_status": [500], "output": "text"})["status"] == 500


def test_no_answer_within_the_timeout_is_a_tool_error(base: str) -> None:
    with pytest.raises(ToolError, match="no answer within 0.3s"):
        call({"url": base + "/slow"}, timeout=0.3)


def test_an_unreachable_server_is_a_tool_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ToolError, match="GET http://127.0.0.1"):
        call({"url": f"http://127.0.0.1:{port}/x"})


def test_text_output_decodes_the_charset(base: str) -> None:
    result = call({"url": base + "/text", "output": "text"})
    assert result == {"status": 200, "body": "héllo", "truncated": False}


def test_json_output_that_is_not_json_is_an_error(base: str) -> None:
    with pytest.raises(ToolError, match="not JSON: '<html>hi</html>'"):
        call({"url": base + "/html"})


def test_json_output_nested_beyond_the_limit_is_an_error_saying_so(base: str) -> None:
    with pytest.raises(ToolError, match="response is not JSON: .*nested more than 100 levels"):
        call({"url": base + "/deep"})


def test_a_url_placeholder_for_a_missing_param_is_an_error(base: str, server: FakeServer) -> None:
    with pytest.raises(ToolError, match="needs parameter 'name'"):
        call({"url": base + "/items/{name}"})
    assert server.requests == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "http://{host}/x"}, "host from a parameter"),
        ({"url": "http://api.local:{port}/x"}, "host from a parameter"),
        ({"url": "ftp://x/y"}, "must start with http"),
        ({}, "url is required"),
        ({"url": "http://x/", "method": "BREW"}, "method must be one of"),
        ({"url": "http://x/", "output": "xml"}, "output must be one of"),
        ({"url": "http://x/", "ok_status": [999]}, "ok_status"),
        ({"url": "http://x/", "headers": {"X": "a\r\nY: b"}}, "line breaks"),
        ({"url": "http://x/", "verb": "GET"}, "unknown key 'verb'"),
    ],
)
def test_bad_configs_are_reported_and_refused(config: dict[str, Any], message: str) -> None:
    problems = validate_config(config)
    assert any(message in p for p in problems), problems
    with pytest.raises(ToolConfigError):
        call(config)


def test_with_a_schema_placeholders_must_name_parameters() -> None:
    schema = {"type": "object", "properties": {"id": {"type": "string"}}}
    config = {"url": "http://x/items/{id}", "body": {"a": "{idd}"}}
    assert validate_config(config, parameters_schema=schema) == ["{idd} is not a parameter"]

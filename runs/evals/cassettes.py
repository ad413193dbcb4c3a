"""Recorded model answers: a loopback proxy the providers talk to during an evaluation.

The providers' base URLs point here, so the real SDKs and provider code run. Per
request it (1) serves a fault due at this call, else (2) in ``replay`` serves the
recorded answer for exactly this request (a request nobody recorded, e.g. a prompt
changed since, is a *miss*: HTTP 404 and a note, never another answer), or (3) in
``live`` and ``record`` forwards to the real provider, and in ``record`` keeps the answer.
A cassette is one JSON file per task.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from django.conf import settings

from runs.evals.faults import FaultSpec
from runs.evals.wire import error_body, fault_answer
from runs.planning.providers.recording import request_key
from runs.textdata import TextDataError, parse_json

MODES = ("live", "record", "replay")
PROVIDERS = ("openai", "anthropic", "compatible")
FORWARDED_HEADERS = ("authorization", "x-api-key", "anthropic-version", "anthropic-beta")
MAX_BODY = 8 * 1024 * 1024
CASSETTE_VERSION = 1


def upstreams() -> dict[str, str]:
    """Where each provider really is (the configured base URLs), for live and record."""
    return {
        "openai": (settings.PLANNERWEB_OPENAI_BASE_URL or "https://api.openai.com/v1").rstrip("/"),
        "anthropic": (settings.PLANNERWEB_ANTHROPIC_BASE_URL or "https://api.anthropic.com").rstrip(
            "/"
        ),
        "compatible": settings.PLANNERWEB_LOCAL_BASE_URL.rstrip("/"),
    }


@dataclass
class Cassette:
    """The answers recorded for one task: per request key, in the order they came."""

    entries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Cassette:
        try:
            data = parse_json(path.read_bytes())
        except (OSError, TextDataError) as exc:
            raise CassetteError(f"cassette {path} cannot be read: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != CASSETTE_VERSION:
            raise CassetteError(f"cassette {path} is not a version {CASSETTE_VERSION} cassette")
        cassette = cls()
        for entry in data.get("interactions", []):
            cassette.entries.setdefault(entry["key"], []).append(entry)
        return cassette

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        interactions = [e for answers in self.entries.values() for e in answers]
        interactions.sort(key=lambda e: e["call"])
        text = json.dumps({"version": CASSETTE_VERSION, "interactions": interactions}, indent=1)
        path.write_text(text + "\n", encoding="utf-8")

    def answer(self, key: str) -> dict[str, Any] | None:
        """The next recorded answer for ``key`` (the last one again once they run out)."""
        answers = self.entries.get(key)
        if not answers:
            return None
        index = self.served.get(key, 0)
        self.served[key] = index + 1
        return answers[min(index, len(answers) - 1)]

    def keep(self, key: str, entry: dict[str, Any]) -> None:
        self.entries.setdefault(key, []).append(entry)


class CassetteError(ValueError):
    pass


@dataclass
class ProxyLog:
    calls: int = 0
    misses: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    network_calls: int = 0


class ModelProxy:
    """The loopback server providers talk to during one task (see the module docstring)."""

    def __init__(
        self,
        *,
        mode: str,
        cassette: Cassette | None = None,
        faults: Sequence[FaultSpec] = (),
    ) -> None:
        if mode not in MODES:
            raise CassetteError(f"unknown model mode {mode!r} ({', '.join(MODES)})")
        self.mode = mode
        self.cassette = cassette if cassette is not None else Cassette()
        self.faults = [f for f in faults if f.target == "model"]
        self.log = ProxyLog()
        self.upstreams = upstreams()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        # A short poll: each task's proxy stops (``shutdown``) without a half-second wait.
        serve = partial(self.server.serve_forever, poll_interval=0.05)
        self._thread = threading.Thread(target=serve, daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def base_urls(self) -> dict[str, str]:
        """The settings that send each provider here."""
        return {
            "PLANNERWEB_OPENAI_BASE_URL": f"{self.url}/openai",
            "PLANNERWEB_ANTHROPIC_BASE_URL": f"{self.url}/anthropic",
            "PLANNERWEB_LOCAL_BASE_URL": f"{self.url}/compatible",
        }

    def __enter__(self) -> ModelProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def handle(
        self, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body, headers) for one request to ``/<provider>/<endpoint>``."""
        provider, _, rest = path.lstrip("/").partition("/")
        if provider not in PROVIDERS:
            return 404, error_body(404, f"unknown provider path {path}"), {}
        try:
            body = parse_json(raw or b"null")
        except TextDataError:
            return 400, error_body(400, "the request body is not JSON"), {}
        key = request_key(provider, rest, body)
        with self._lock:
            self.log.calls += 1
            call = self.log.calls
            fault = next((f for f in self.faults if f.hits(call)), None)
            if fault is not None:
                self.log.injected.append(f"{fault.kind} at model call {call}")
                return fault_answer(provider, fault.kind)
            if self.mode == "replay":
                entry = self.cassette.answer(key)
                if entry is None:
                    self.log.misses.append(f"call {call}: {provider} /{rest}")
                    message = (
                        "cassette miss: nothing was recorded for this request (changed prompt?)"
                    )
                    return 404, error_body(404, message), {}
                return entry["status"], entry["body"], {}
        status, answer = self._forward(provider, rest, headers, raw)
        if self.mode == "record":
            with self._lock:
                entry = {"key": key, "call": call, "provider": provider, "path": rest}
                self.cassette.keep(key, {**entry, "status": status, "body": answer})
        return status, answer, {}

    def _forward(
        self, provider: str, rest: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, Any]:
        sent = {k: v for k, v in headers.items() if k in FORWARDED_HEADERS}
        sent["content-type"] = "application/json"
        with self._lock:
            self.log.network_calls += 1
        request = urllib.request.Request(
            f"{self.upstreams[provider]}/{rest}", data=raw, headers=sent, method="POST"
        )
        timeout = settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read()
        except (OSError, ValueError) as exc:
            return 502, error_body(502, f"the provider could not be reached: {exc}")
        try:
            return status, parse_json(text)
        except TextDataError:
            return 502, error_body(502, "the provider answered something that is not JSON")


def _handler(proxy: ModelProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            extra: dict[str, str] = {}
            if length > MAX_BODY:
                status, body = 413, error_body(413, "request too large")
            else:
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, body, extra = proxy.handle(self.path, headers, raw)
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up

        def log_message(self, *args: Any) -> None:
            pass

    return Handler

"""A fake LLM HTTP server on loopback that answers in the OpenAI and Anthropic wire formats.

Tests queue answers (``server.queue(...)``); each request takes the next one
and is recorded (path, headers, JSON body) for assertions. The real SDK clients
talk to it over real sockets, so their retry, timeout and parsing code runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


class FakeLLM:
    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                with fake._lock:
                    fake.requests.append(
                        Seen(
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            json.loads(raw or b"null"),
                        )
                    )
                    answer = (
                        fake.answers.pop(0)
                        if fake.answers
                        else Answer(500, {"error": {"message": "no answer queued"}})
                    )
                if answer.delay:
                    time.sleep(answer.delay)
                payload = json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    def start(self) -> FakeLLM:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def running() -> Iterator[FakeLLM]:
    server = FakeLLM().start()
    try:
        yield server
    finally:
        server.stop()


# --- OpenAI Responses API ------------------------------------------------------------
def openai_response(
    text: str | None = None, *, refusal: str | None = None, model: str = "gpt-4.1-mini"
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "output_text", "text": text, "annotations": []})
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": 1_700_000_000,
        "model": model,
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": content,
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 1200,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": 300,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 1500,
        },
    }


def openai_error(status: int, message: str, headers: dict[str, str] | None = None) -> Answer:
    body = {"error": {"message": message, "type": "error", "code": None}}
    return Answer(status, body, headers or {})


# --- OpenAI Chat Completions (the compatible provider) ---------------------------------
def chat_completion(text: str, *, model: str = "local-model") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {"prompt_tokens": 500, "completion_tokens": 120, "total_tokens": 620},
    }


# --- Anthropic Messages API ----------------------------------------------------------
def anthropic_tool_use(
    data: Any, *, name: str = "submit_plan", model: str = "claude-sonnet-4-6"
) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "tool_use", "id": "toolu_1", "name": name, "input": data}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 900, "output_tokens": 250},
    }


def anthropic_text(
    text: str, *, stop_reason: str = "end_turn", stop_details: Any = None
) -> dict[str, Any]:
    return {
        "id": "msg_test",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_details": stop_details,
        "stop_sequence": None,
        "usage": {"input_tokens": 900, "output_tokens": 5},
    }


def anthropic_error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> Answer:
    return Answer(
        status, {"type": "error", "error": {"type": kind, "message": message}}, headers or {}
    )

"""The interface every language-model provider implements, and the errors it may raise.

A provider turns a ``ModelRequest`` (system text, a conversation, the JSON Schema
the answer must follow) into a ``ModelReply`` (text, parsed JSON when the answer
is JSON, token usage, latency, a refusal if the model declined). Transport
failures that survive the SDK's own retries (429, 5xx, timeouts, bad credentials)
become a ``ProviderError`` with a sentence an operator can act on, never a crash.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runs import textdata

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ModelRequest:
    """What to ask: ``messages`` alternate user/assistant, each ``{"role", "content"}``."""

    system: str
    messages: list[dict[str, str]]
    schema: dict[str, Any]
    schema_name: str = "plan"
    model: str = ""
    temperature: float | None = None
    max_tokens: int = 4096


@dataclass(frozen=True)
class ModelReply:
    text: str
    data: Any = None  # the answer parsed as JSON, None when it is not JSON
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: int = 0
    refusal: str = ""  # non-empty when the model declined, with its explanation
    model: str = ""
    raw: dict[str, Any] = field(default_factory=dict)  # provider metadata (ids, stop reason)


class ProviderError(Exception):
    """A model call that produced no usable reply; ``kind`` says which way it failed."""

    def __init__(self, message: str, *, kind: str, latency_ms: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.kind = (
            kind  # config | rate_limited | server_error | timeout | connection | bad_request
        )
        self.latency_ms = latency_ms


class Provider(Protocol):
    name: str
    default_model: str

    def complete(self, request: ModelRequest) -> ModelReply: ...


def env_secret(name: str) -> str:
    """An API key from ``NAME`` or the file named by ``NAME_FILE``; "" when neither is set."""
    if value := os.environ.get(name, "").strip():
        return value
    if path := os.environ.get(f"{name}_FILE"):
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ProviderError(f"{name}_FILE cannot be read: {exc}", kind="config") from exc
    return ""


def strip_fence(text: str) -> str:
    """The reply without a Markdown code fence, so JSON errors point inside the JSON."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    return body


def parse_json(text: str) -> Any:
    """The reply as JSON, tolerating a Markdown fence; None when it is not JSON (or beyond limits)."""
    try:
        return textdata.parse_json(strip_fence(text))
    except textdata.TextDataError:
        return None


def status_error(status: int, detail: str, *, provider: str, latency_ms: int) -> ProviderError:
    """Map an HTTP error status left after the SDK's retries to a clear ProviderError."""
    detail = detail[:300]
    if status == 429:
        return ProviderError(
            f"{provider} rate limit: still 429 after retries ({detail})",
            kind="rate_limited",
            latency_ms=latency_ms,
        )
    if status in (401, 403):
        return ProviderError(
            f"{provider} rejected the credentials (HTTP {status}); check the API key",
            kind="config",
            latency_ms=latency_ms,
        )
    if status >= 500:
        return ProviderError(
            f"{provider} server error: HTTP {status} after retries ({detail})",
            kind="server_error",
            latency_ms=latency_ms,
        )
    return ProviderError(
        f"{provider} refused the request: HTTP {status} ({detail})",
        kind="bad_request",
        latency_ms=latency_ms,
    )


def error_detail(exc: Any) -> str:
    """The message an SDK error carries (its body's ``error.message`` when there is one)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(getattr(exc, "message", exc))


def elapsed_ms(started: float) -> int:
    """Milliseconds since ``started`` (a ``time.monotonic()`` reading)."""
    return int((time.monotonic() - started) * 1000)

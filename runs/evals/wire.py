"""Model answers in each provider's wire format, for the faults the model proxy injects."""

from __future__ import annotations

from typing import Any

MALFORMED_TEXT = '{"goal": "an answer cut short", "steps": ['
REFUSAL_TEXT = "I can't help with that."


def openai_response(
    text: str | None,
    refusal: str | None = None,
    *,
    tokens_in: int = 0,
    tokens_out: int = 0,
    model: str = "injected",
) -> dict[str, Any]:
    """A Responses API answer carrying ``text`` and/or a ``refusal``, with its token usage."""
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "output_text", "text": text, "annotations": []})
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": "resp_injected",
        "object": "response",
        "created_at": 0,
        "model": model,
        "status": "completed",
        "output": [
            {
                "type": "message",
                "id": "msg_injected",
                "role": "assistant",
                "status": "completed",
                "content": content,
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens_in + tokens_out,
        },
    }


def _anthropic(text: str, refusal: bool) -> dict[str, Any]:
    return {
        "id": "msg_injected",
        "type": "message",
        "role": "assistant",
        "model": "injected",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "refusal" if refusal else "end_turn",
        "stop_details": {"type": "refusal", "explanation": text} if refusal else None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0},
    }


def _chat(text: str | None, refusal: str | None) -> dict[str, Any]:
    message = {"role": "assistant", "content": text, "refusal": refusal}
    return {
        "id": "chatcmpl-injected",
        "object": "chat.completion",
        "created": 0,
        "model": "injected",
        "choices": [{"index": 0, "finish_reason": "stop", "message": message}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    """An error body both SDKs read (``error.message``)."""
    kind = {429: "rate_limit_error", 404: "not_found_error"}.get(status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def fault_answer(provider: str, kind: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """(status, body, headers) of a faulted answer from ``provider`` (openai, anthropic, compatible)."""
    if kind in ("429", "500"):
        status = int(kind)
        # A short retry-after: the SDK's retries run, without its default back-off.
        return status, error_body(status, f"injected fault: HTTP {status}"), {"retry-after-ms": "5"}
    refusal = kind == "refusal"
    if provider == "anthropic":
        return 200, _anthropic(REFUSAL_TEXT if refusal else MALFORMED_TEXT, refusal), {}
    if provider == "compatible":
        body = _chat(None, REFUSAL_TEXT) if refusal else _chat(MALFORMED_TEXT, None)
        return 200, body, {}
    body = openai_response(None, REFUSAL_TEXT) if refusal else openai_response(MALFORMED_TEXT)
    return 200, body, {}

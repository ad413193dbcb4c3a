"""Anthropic: the Messages API with forced tool use.

The answer schema becomes the input schema of a single tool the model must call
(``tool_choice: {"type": "tool"}``), so the reply is a ``tool_use`` block whose
``input`` is already JSON. Forced tool use works on every current Claude model,
whereas ``output_config.format`` is limited to newer ones; a refusal arrives as
``stop_reason: "refusal"`` with ``stop_details``.

Temperature is not sent: the installed SDK's ``messages.create`` no longer takes
it (current Claude models choose their own sampling), so the option is ignored here.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, cast

import anthropic
from django.conf import settings

from runs.planning.providers.base import (
    ModelReply,
    ModelRequest,
    ProviderError,
    elapsed_ms,
    env_secret,
    error_detail,
    parse_json,
    status_error,
)
from runs.planning.providers.recording import recording_client

if TYPE_CHECKING:
    from anthropic.types import Message, MessageParam


class AnthropicProvider:
    name = "anthropic"
    key_env = "ANTHROPIC_API_KEY"

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None) -> None:
        self.base_url = base_url if base_url is not None else settings.PLANNERWEB_ANTHROPIC_BASE_URL
        self._api_key = api_key
        self.default_model = settings.PLANNERWEB_ANTHROPIC_MODEL

    def complete(self, request: ModelRequest) -> ModelReply:
        model = request.model or self.default_model
        key = self._api_key if self._api_key is not None else env_secret(self.key_env)
        if not key:
            raise ProviderError(
                f"{self.key_env} is not set: {self.name} cannot plan", kind="config"
            )
        tool_name = f"submit_{request.schema_name}"
        started = time.monotonic()
        try:
            # An explicit base_url: neither ANTHROPIC_BASE_URL nor a profile on disk redirects us.
            with anthropic.Anthropic(
                api_key=key,
                base_url=self.base_url or "https://api.anthropic.com",
                timeout=settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS,
                max_retries=settings.PLANNERWEB_PLANNER_SDK_RETRIES,
                http_client=recording_client(
                    "anthropic", self.base_url or "https://api.anthropic.com"
                ),
            ) as client:
                message = client.messages.create(
                    model=model,
                    max_tokens=request.max_tokens,
                    system=request.system,
                    # The roles are the request's user/assistant turns.
                    messages=cast("list[MessageParam]", request.messages),
                    tools=[
                        {
                            "name": tool_name,
                            "description": f"Submit the {request.schema_name} as the answer.",
                            "input_schema": request.schema,
                        }
                    ],
                    tool_choice={
                        "type": "tool",
                        "name": tool_name,
                        "disable_parallel_tool_use": True,
                    },
                )
        except anthropic.APIStatusError as exc:
            raise status_error(
                exc.status_code,
                error_detail(exc),
                provider=self.name,
                latency_ms=elapsed_ms(started),
            ) from None
        except anthropic.APITimeoutError:
            raise ProviderError(
                f"{self.name} timed out after retries",
                kind="timeout",
                latency_ms=elapsed_ms(started),
            ) from None
        except anthropic.APIConnectionError as exc:
            raise ProviderError(
                f"{self.name} unreachable: {exc}", kind="connection", latency_ms=elapsed_ms(started)
            ) from None
        except (anthropic.AnthropicError, ValueError) as exc:
            raise ProviderError(
                f"{self.name}: {exc}", kind="bad_response", latency_ms=elapsed_ms(started)
            ) from None
        return _reply(message, tool_name, model, elapsed_ms(started))


def _reply(message: Message, tool_name: str, model: str, latency: int) -> ModelReply:
    """The reply a message carries: the forced tool call's input, or its text (a refusal)."""
    refusal = ""
    if message.stop_reason == "refusal":
        details = message.stop_details
        refusal = (details.explanation if details else None) or "refused"
        if details is not None and details.category:
            refusal = f"{refusal} ({details.category})"
    data = None
    text = ""
    for block in message.content:
        if block.type == "tool_use" and block.name == tool_name:
            data = block.input
            text = json.dumps(block.input, ensure_ascii=False)
            break
    else:
        # No tool call (e.g. a refusal, or max_tokens hit): keep whatever text came back.
        text = "".join(b.text for b in message.content if b.type == "text")
        data = parse_json(text) if text else None
    return ModelReply(
        text=text,
        data=data,
        tokens_in=message.usage.input_tokens,
        tokens_out=message.usage.output_tokens,
        latency_ms=latency,
        refusal=refusal,
        model=message.model or model,
        raw={"id": message.id, "stop_reason": message.stop_reason},
    )

"""Any OpenAI-compatible server by base URL (llama.cpp, vLLM, Ollama, LM Studio).

It uses Chat Completions, not the Responses API: every one of those servers
serves ``/v1/chat/completions`` with ``response_format: json_schema`` (llama.cpp
turns the schema into a grammar, vLLM and Ollama into guided decoding), while
Responses support is missing or partial in most of them. Local servers often
need no key: ``PLANNERWEB_LOCAL_API_KEY`` is optional.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, cast

import openai
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
    from openai.types.chat import ChatCompletionMessageParam


class CompatibleProvider:
    name = "compatible"
    key_env = "PLANNERWEB_LOCAL_API_KEY"

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None) -> None:
        self.base_url = base_url or settings.PLANNERWEB_LOCAL_BASE_URL
        self._api_key = api_key
        self.default_model = settings.PLANNERWEB_LOCAL_MODEL

    def complete(self, request: ModelRequest) -> ModelReply:
        model = request.model or self.default_model
        key = self._api_key if self._api_key is not None else env_secret(self.key_env)
        started = time.monotonic()
        messages = [{"role": "system", "content": request.system}, *request.messages]
        try:
            with openai.OpenAI(
                api_key=key or "not-needed",
                base_url=self.base_url,
                timeout=settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS,
                max_retries=settings.PLANNERWEB_PLANNER_SDK_RETRIES,
                http_client=recording_client("compatible", self.base_url),
            ) as client:
                completion = client.chat.completions.create(
                    model=model,
                    # The roles are system plus the request's user/assistant turns.
                    messages=cast("list[ChatCompletionMessageParam]", messages),
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    response_format={
                        "type": "json_schema",
                        "json_schema": {
                            "name": request.schema_name,
                            "schema": request.schema,
                            "strict": False,
                        },
                    },
                    stream=False,
                )
        except openai.APIStatusError as exc:
            raise status_error(
                exc.status_code,
                error_detail(exc),
                provider=self.name,
                latency_ms=elapsed_ms(started),
            ) from None
        except openai.APITimeoutError:
            raise ProviderError(
                f"{self.name} timed out after retries",
                kind="timeout",
                latency_ms=elapsed_ms(started),
            ) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"{self.name} server at {self.base_url} unreachable: {exc}",
                kind="connection",
                latency_ms=elapsed_ms(started),
            ) from None
        except openai.OpenAIError as exc:
            raise ProviderError(
                f"{self.name}: {exc}", kind="bad_response", latency_ms=elapsed_ms(started)
            ) from None
        latency = elapsed_ms(started)
        if not completion.choices:
            raise ProviderError(
                f"{self.name} answered with no choices", kind="bad_response", latency_ms=latency
            )
        choice = completion.choices[0]
        text = choice.message.content or ""
        refusal = choice.message.refusal or (
            "stopped by the content filter" if choice.finish_reason == "content_filter" else ""
        )
        usage = completion.usage
        return ModelReply(
            text=text,
            data=parse_json(text) if text else None,
            tokens_in=(usage.prompt_tokens or 0) if usage else 0,
            tokens_out=(usage.completion_tokens or 0) if usage else 0,
            latency_ms=latency,
            refusal=refusal,
            model=completion.model or model,
            raw={"id": completion.id, "finish_reason": choice.finish_reason},
        )

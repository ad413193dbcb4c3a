"""OpenAI: the Responses API with structured output against the request's JSON Schema.

``strict`` is off because the plan schema has free-form ``params`` objects, which
strict mode cannot express (it demands ``additionalProperties: false`` everywhere);
the answer is validated by ``runs.planning.validation`` anyway, and problems go
back to the model in a repair round.
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
    from openai.types.responses import ResponseInputParam


class OpenAIProvider:
    name = "openai"
    key_env = "OPENAI_API_KEY"

    def __init__(self, *, base_url: str | None = None, api_key: str | None = None) -> None:
        self.base_url = base_url if base_url is not None else settings.PLANNERWEB_OPENAI_BASE_URL
        self._api_key = api_key
        self.default_model = settings.PLANNERWEB_OPENAI_MODEL

    def _client(self) -> openai.OpenAI:
        key = self._api_key if self._api_key is not None else env_secret(self.key_env)
        if not key:
            raise ProviderError(
                f"{self.key_env} is not set: {self.name} cannot plan", kind="config"
            )
        return openai.OpenAI(
            api_key=key,
            base_url=self.base_url or None,
            timeout=settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS,
            max_retries=settings.PLANNERWEB_PLANNER_SDK_RETRIES,
            http_client=recording_client("openai", self.base_url or "https://api.openai.com/v1"),
        )

    def complete(self, request: ModelRequest) -> ModelReply:
        model = request.model or self.default_model
        started = time.monotonic()
        try:
            with self._client() as client:
                response = client.responses.create(
                    model=model,
                    instructions=request.system,
                    # The roles are the request's user/assistant turns.
                    input=cast(
                        "ResponseInputParam",
                        [{"role": m["role"], "content": m["content"]} for m in request.messages],
                    ),
                    text={
                        "format": {
                            "type": "json_schema",
                            "name": request.schema_name,
                            "schema": request.schema,
                            "strict": False,
                        }
                    },
                    temperature=request.temperature,
                    max_output_tokens=request.max_tokens,
                    store=False,
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
                f"{self.name} unreachable: {exc}", kind="connection", latency_ms=elapsed_ms(started)
            ) from None
        except openai.OpenAIError as exc:
            raise ProviderError(
                f"{self.name}: {exc}", kind="bad_response", latency_ms=elapsed_ms(started)
            ) from None
        latency = elapsed_ms(started)
        refusal = ""
        for item in response.output:
            if item.type == "message":
                for content in item.content:
                    if content.type == "refusal":
                        refusal = content.refusal or "refused"
        incomplete = response.incomplete_details
        if not refusal and incomplete is not None and incomplete.reason == "content_filter":
            refusal = "stopped by the content filter"
        text = response.output_text
        usage = response.usage
        return ModelReply(
            text=text,
            data=parse_json(text) if text else None,
            tokens_in=usage.input_tokens if usage else 0,
            tokens_out=usage.output_tokens if usage else 0,
            latency_ms=latency,
            refusal=refusal,
            model=response.model or model,
            raw={
                "id": response.id,
                "status": response.status,
                "incomplete": response.incomplete_details.reason
                if response.incomplete_details
                else None,
            },
        )

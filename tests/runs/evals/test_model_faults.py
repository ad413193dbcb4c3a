"""Model faults on the wire: each provider's real SDK and code meet each fault as from the provider."""

from __future__ import annotations

from typing import Any

import pytest

from runs.evals.cassettes import ModelProxy
from runs.evals.faults import parse_fault
from runs.planning.providers.anthropic import AnthropicProvider
from runs.planning.providers.base import ModelRequest, ProviderError
from runs.planning.providers.compatible import CompatibleProvider
from runs.planning.providers.openai import OpenAIProvider
from runs.planning.schema import plan_json_schema

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"


def provider(name: str, proxy: ModelProxy) -> Any:
    cls = {
        "openai": OpenAIProvider,
        "anthropic": AnthropicProvider,
        "compatible": CompatibleProvider,
    }
    return cls[name](base_url=f"{proxy.url}/{name}", api_key=KEY)


def ask(name: str, fault: str) -> tuple[Any, ModelProxy]:
    with ModelProxy(mode="replay", faults=[parse_fault(fault)]) as proxy:
        request = ModelRequest(
            system="plan", messages=[{"role": "user", "content": "go"}], schema=plan_json_schema()
        )
        try:
            return provider(name, proxy).complete(request), proxy
        except ProviderError as exc:
            return exc, proxy


@pytest.fixture(autouse=True)
def quick(settings: Any) -> None:
    settings.PLANNERWEB_PLANNER_SDK_RETRIES = 2
    settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS = 5


PROVIDERS = ["openai", "anthropic", "compatible"]


@pytest.mark.parametrize("name", PROVIDERS)
def test_a_refusal_reaches_the_planner_as_a_refusal(name: str) -> None:
    reply, _ = ask(name, "model:refusal@1")
    assert reply.refusal
    assert reply.data is None


@pytest.mark.parametrize("name", PROVIDERS)
def test_malformed_json_reaches_the_planner_as_text_that_is_not_json(name: str) -> None:
    reply, _ = ask(name, "model:malformed@1")
    assert reply.text.startswith('{"goal"')
    assert reply.data is None
    assert not reply.refusal


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize(("status", "kind"), [("429", "rate_limited"), ("500", "server_error")])
def test_an_http_error_is_retried_by_the_sdk_then_named(name: str, status: str, kind: str) -> None:
    error, proxy = ask(name, f"model:{status}@1x3")
    assert isinstance(error, ProviderError)
    assert error.kind == kind
    assert proxy.log.calls == 3  # the first call and the SDK's two retries
    assert proxy.log.injected == [f"{status} at model call {n}" for n in (1, 2, 3)]


def test_after_one_error_the_retry_is_served_from_the_cassette_or_misses() -> None:
    error, proxy = ask("openai", "model:429@1")
    assert isinstance(error, ProviderError)  # nothing recorded: the retry is a miss
    assert error.kind == "bad_request"
    assert "cassette miss" in error.message
    assert proxy.log.calls == 2
    assert proxy.log.misses == ["call 2: openai /responses"]

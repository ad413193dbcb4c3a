"""The real openai and anthropic SDK clients against a fake server on loopback, in each wire format."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_with_model
from runs.planning.prompt import context_for
from runs.planning.providers.anthropic import AnthropicProvider
from runs.planning.providers.base import ModelRequest, ProviderError
from runs.planning.providers.compatible import CompatibleProvider
from runs.planning.providers.openai import OpenAIProvider
from runs.planning.schema import plan_json_schema
from runs.tools.registry import load_tool_specs
from tests.runs.planning.conftest import good_plan
from tests.runs.planning.providers.fake_llm import (
    Answer,
    FakeLLM,
    anthropic_error,
    anthropic_text,
    anthropic_tool_use,
    chat_completion,
    openai_error,
    openai_response,
    running,
)

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


@pytest.fixture
def openai_provider(fake: FakeLLM, planner_settings: Any) -> OpenAIProvider:
    return OpenAIProvider(base_url=fake.url + "/v1", api_key=KEY)


@pytest.fixture
def anthropic_provider(fake: FakeLLM, planner_settings: Any) -> AnthropicProvider:
    return AnthropicProvider(base_url=fake.url, api_key=KEY)


def request() -> ModelRequest:
    return ModelRequest(
        system="plan it",
        messages=[{"role": "user", "content": "Task: record a label"}],
        schema=plan_json_schema(),
        model="",
        temperature=0.1,
        max_tokens=500,
    )


# --- OpenAI Responses ---------------------------------------------------------------
def test_openai_good_plan_is_parsed_with_usage_and_structured_output_requested(
    fake: FakeLLM, openai_provider: OpenAIProvider
) -> None:
    fake.queue(Answer(body=openai_response(json.dumps(good_plan()))))
    reply = openai_provider.complete(request())
    assert reply.data == good_plan()
    assert (reply.tokens_in, reply.tokens_out) == (1200, 300)
    assert reply.refusal == ""
    assert reply.latency_ms >= 0
    seen = fake.requests[0]
    assert seen.path == "/v1/responses"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body["text"]["format"]["type"] == "json_schema"
    assert seen.body["text"]["format"]["schema"] == plan_json_schema()
    assert seen.body["instructions"] == "plan it"
    assert seen.body["model"] == "gpt-4.1-mini"
    assert seen.body["max_output_tokens"] == 500
    assert KEY not in json.dumps(reply.raw)


def test_openai_malformed_json_comes_back_as_text_without_data(
    fake: FakeLLM, openai_provider: OpenAIProvider
) -> None:
    fake.queue(Answer(body=openai_response('{"goal": "x", "steps": [')))
    reply = openai_provider.complete(request())
    assert reply.data is None
    assert reply.text.startswith('{"goal"')


def test_openai_refusal_is_flagged(fake: FakeLLM, openai_provider: OpenAIProvider) -> None:
    fake.queue(Answer(body=openai_response(None, refusal="I can't help with that.")))
    reply = openai_provider.complete(request())
    assert reply.refusal == "I can't help with that."
    assert reply.data is None


def test_openai_429_is_retried_after_retry_after_then_succeeds(
    fake: FakeLLM, openai_provider: OpenAIProvider
) -> None:
    fake.queue(
        openai_error(429, "slow down", {"retry-after": "0.05"}),
        Answer(body=openai_response(json.dumps(good_plan()))),
    )
    reply = openai_provider.complete(request())
    assert reply.data == good_plan()
    assert len(fake.requests) == 2


def test_openai_429_after_every_retry_is_a_rate_limit_error(
    fake: FakeLLM, openai_provider: OpenAIProvider
) -> None:
    fake.queue(*[openai_error(429, "slow down", {"retry-after-ms": "10"}) for _ in range(3)])
    with pytest.raises(ProviderError) as caught:
        openai_provider.complete(request())
    assert caught.value.kind == "rate_limited"
    assert "429" in caught.value.message
    assert len(fake.requests) == 3  # the first try and two SDK retries


def test_openai_500_after_retries_is_a_server_error(
    fake: FakeLLM, openai_provider: OpenAIProvider
) -> None:
    fake.queue(*[openai_error(500, "boom", {"retry-after-ms": "10"}) for _ in range(3)])
    with pytest.raises(ProviderError) as caught:
        openai_provider.complete(request())
    assert caught.value.kind == "server_error"
    assert "HTTP 500" in caught.value.message


def test_openai_timeout_is_a_timeout_error(
    fake: FakeLLM, openai_provider: OpenAIProvider, planner_settings: Any
) -> None:
    planner_settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS = 0.2
    planner_settings.PLANNERWEB_PLANNER_SDK_RETRIES = 1
    fake.queue(
        Answer(body=openai_response("{}"), delay=1.0), Answer(body=openai_response("{}"), delay=1.0)
    )
    with pytest.raises(ProviderError) as caught:
        openai_provider.complete(request())
    assert caught.value.kind == "timeout"
    assert len(fake.requests) == 2


@pytest.mark.usefixtures("no_openai_key")
def test_openai_without_a_key_is_a_config_error_and_sends_nothing(
    fake: FakeLLM, planner_settings: Any
) -> None:
    provider = OpenAIProvider(base_url=fake.url + "/v1")
    with pytest.raises(ProviderError, match="OPENAI_API_KEY is not set") as caught:
        provider.complete(request())
    assert caught.value.kind == "config"
    assert fake.requests == []


def test_openai_key_comes_from_the_environment(
    fake: FakeLLM, planner_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    fake.queue(Answer(body=openai_response(json.dumps(good_plan()))))
    OpenAIProvider(base_url=fake.url + "/v1").complete(request())
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_repair_round_through_the_real_sdk_feeds_the_problems_back(
    fake: FakeLLM, openai_provider: OpenAIProvider, planner_tools: Any
) -> None:
    bad = {"steps": [{"id": "a", "action": "nuke_everything", "params": {}}]}
    fake.queue(
        Answer(body=openai_response("not json at all")),
        Answer(body=openai_response(json.dumps(bad))),
        Answer(body=openai_response(json.dumps(good_plan()))),
    )
    outcome = plan_with_model(
        openai_provider,
        context_for(task="record two labels"),
        PlannerOptions(planner="openai", repair_rounds=2),
        tools=load_tool_specs(),
    )
    assert outcome.ok, outcome.reason
    assert [c.purpose for c in outcome.calls] == ["plan", "repair", "repair"]
    second_input = fake.requests[1].body["input"]
    assert "not a valid JSON plan" in second_input[-1]["content"]
    third_input = fake.requests[2].body["input"]
    assert "nuke_everything" in third_input[-1]["content"]
    assert third_input[-2] == {"role": "assistant", "content": json.dumps(bad)}


# --- Anthropic Messages -------------------------------------------------------------
def test_anthropic_forced_tool_use_returns_the_tool_input(
    fake: FakeLLM, anthropic_provider: AnthropicProvider
) -> None:
    fake.queue(Answer(body=anthropic_tool_use(good_plan())))
    reply = anthropic_provider.complete(request())
    assert reply.data == good_plan()
    assert (reply.tokens_in, reply.tokens_out) == (900, 250)
    seen = fake.requests[0]
    assert seen.path == "/v1/messages"
    assert seen.headers["authorization"] == f"Bearer {KEY}"  # this SDK version sends Bearer
    assert seen.body["tool_choice"] == {
        "type": "tool",
        "name": "submit_plan",
        "disable_parallel_tool_use": True,
    }
    assert seen.body["tools"][0]["input_schema"] == plan_json_schema()
    assert seen.body["system"] == "plan it"
    assert seen.body["model"] == "claude-sonnet-4-6"


def test_anthropic_text_instead_of_a_tool_call_is_parsed_or_left_as_text(
    fake: FakeLLM, anthropic_provider: AnthropicProvider
) -> None:
    fake.queue(Answer(body=anthropic_text("{broken json")))
    reply = anthropic_provider.complete(request())
    assert reply.data is None
    assert reply.text == "{broken json"


def test_anthropic_schema_violation_reaches_validation_as_data(
    fake: FakeLLM, anthropic_provider: AnthropicProvider, planner_tools: Any
) -> None:
    bad = {"steps": [{"id": "a", "action": "record", "params": {"label": 3}}]}
    fake.queue(Answer(body=anthropic_tool_use(bad)), Answer(body=anthropic_tool_use(bad)))
    outcome = plan_with_model(
        anthropic_provider,
        context_for(task="record"),
        PlannerOptions(planner="anthropic", repair_rounds=1),
        tools=load_tool_specs(),
    )
    assert not outcome.ok
    assert "still invalid after 1 repair round" in outcome.reason
    assert len(fake.requests) == 2
    # The repair round is a real conversation: the bad answer, then the problems.
    messages = fake.requests[1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert "key" in messages[2]["content"]


def test_anthropic_refusal_is_flagged_with_its_category(
    fake: FakeLLM, anthropic_provider: AnthropicProvider
) -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "Not going to do that."}
    fake.queue(Answer(body=anthropic_text("", stop_reason="refusal", stop_details=details)))
    reply = anthropic_provider.complete(request())
    assert reply.refusal == "Not going to do that. (cyber)"


def test_anthropic_429_with_retry_after_is_retried(
    fake: FakeLLM, anthropic_provider: AnthropicProvider
) -> None:
    fake.queue(
        anthropic_error(429, "rate_limit_error", "slow down", {"retry-after": "0.05"}),
        Answer(body=anthropic_tool_use(good_plan())),
    )
    assert anthropic_provider.complete(request()).data == good_plan()
    assert len(fake.requests) == 2


def test_anthropic_overloaded_after_retries_is_a_server_error(
    fake: FakeLLM, anthropic_provider: AnthropicProvider
) -> None:
    fake.queue(
        *[
            anthropic_error(529, "overloaded_error", "busy", {"retry-after-ms": "10"})
            for _ in range(3)
        ]
    )
    with pytest.raises(ProviderError) as caught:
        anthropic_provider.complete(request())
    assert caught.value.kind == "server_error"
    assert "busy" in caught.value.message


def test_anthropic_timeout_is_a_timeout_error(
    fake: FakeLLM, anthropic_provider: AnthropicProvider, planner_settings: Any
) -> None:
    planner_settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS = 0.2
    planner_settings.PLANNERWEB_PLANNER_SDK_RETRIES = 0
    fake.queue(Answer(body=anthropic_tool_use(good_plan()), delay=1.0))
    with pytest.raises(ProviderError) as caught:
        anthropic_provider.complete(request())
    assert caught.value.kind == "timeout"


def test_anthropic_bad_key_is_a_config_error(
    fake: FakeLLM, anthropic_provider: AnthropicProvider
) -> None:
    fake.queue(anthropic_error(401, "authentication_error", "invalid x-api-key"))
    with pytest.raises(ProviderError, match="check the API key") as caught:
        anthropic_provider.complete(request())
    assert caught.value.kind == "config"
    assert len(fake.requests) == 1  # 401 is not retried


# --- OpenAI-compatible (Chat Completions) -----------------------------------------------
def test_compatible_server_uses_chat_completions_with_a_json_schema(
    fake: FakeLLM, planner_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLANNERWEB_LOCAL_API_KEY", raising=False)
    fake.queue(Answer(body=chat_completion(json.dumps(good_plan()))))
    reply = CompatibleProvider(base_url=fake.url + "/v1").complete(request())
    assert reply.data == good_plan()
    assert (reply.tokens_in, reply.tokens_out) == (500, 120)
    seen = fake.requests[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.body["messages"][0] == {"role": "system", "content": "plan it"}
    assert seen.body["response_format"]["type"] == "json_schema"
    assert seen.body["model"] == "local-model"


# --- the network guard --------------------------------------------------------------
def test_the_suite_refuses_non_loopback_addresses() -> None:
    with pytest.raises(OSError, match="only loopback"):
        socket.create_connection(("203.0.113.7", 443), timeout=1)


def test_a_provider_pointed_at_the_internet_fails_cleanly(planner_settings: Any) -> None:
    planner_settings.PLANNERWEB_PLANNER_SDK_RETRIES = 0
    provider = OpenAIProvider(base_url="http://203.0.113.7/v1", api_key=KEY)
    with pytest.raises(ProviderError) as caught:
        provider.complete(request())
    assert caught.value.kind == "connection"

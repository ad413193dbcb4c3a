"""A question from a real SDK client (OpenAI Responses, Anthropic tool use) against the fake server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_with_model
from runs.planning.prompt import context_for
from runs.planning.providers.anthropic import AnthropicProvider
from runs.planning.providers.openai import OpenAIProvider
from runs.tools.registry import load_tool_specs
from tests.runs.planning.providers.fake_llm import (
    Answer,
    FakeLLM,
    anthropic_tool_use,
    openai_response,
    running,
)

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"
QUESTION = {"ask": "Staging or production?", "options": ["staging", "production"]}

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


def _plan(provider: Any, *, may_ask: bool, repair_rounds: int = 2) -> Any:
    context = context_for(task="deploy the release", mode="upfront", may_ask=may_ask)
    options = PlannerOptions(planner=provider.name, mode="upfront", repair_rounds=repair_rounds)
    return plan_with_model(provider, context, options, tools=load_tool_specs())


def test_openai_asks_through_the_widened_schema(
    fake: FakeLLM, planner_settings: Any, planner_tools: Any
) -> None:
    fake.queue(Answer(body=openai_response(json.dumps(QUESTION))))

    outcome = _plan(OpenAIProvider(base_url=fake.url + "/v1", api_key=KEY), may_ask=True)

    assert outcome.question == {"question": QUESTION["ask"], "options": QUESTION["options"]}
    assert not outcome.ok and outcome.document is None
    sent = fake.requests[0].body["text"]["format"]["schema"]
    assert "ask" in sent["properties"] and "steps" not in sent.get("required", [])


def test_anthropic_asks_through_its_forced_tool(
    fake: FakeLLM, planner_settings: Any, planner_tools: Any
) -> None:
    fake.queue(Answer(body=anthropic_tool_use(QUESTION)))

    outcome = _plan(AnthropicProvider(base_url=fake.url, api_key=KEY), may_ask=True)

    assert outcome.question is not None and outcome.question["question"] == QUESTION["ask"]
    assert "ask" in fake.requests[0].body["tools"][0]["input_schema"]["properties"]


def test_without_questions_left_an_ask_is_just_an_invalid_plan(
    fake: FakeLLM, planner_settings: Any, planner_tools: Any
) -> None:
    fake.queue(Answer(body=openai_response(json.dumps(QUESTION))))

    outcome = _plan(
        OpenAIProvider(base_url=fake.url + "/v1", api_key=KEY), may_ask=False, repair_rounds=0
    )

    assert outcome.question is None and not outcome.ok
    assert "ask" not in fake.requests[0].body["text"]["format"]["schema"]["properties"]

"""``llm`` tool steps run by the executor, through the real SDKs against the fake provider server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.llmtools.answer import model_name
from runs.models import LlmCall, Run, Tool, TranscriptEvent
from tests.runs import toolbox
from tests.runs.planning.providers.fake_llm import (
    Answer,
    FakeLLM,
    anthropic_tool_use,
    openai_error,
    openai_response,
    running,
)

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"
SUMMARY = {
    "type": "object",
    "properties": {"tables": {"type": "array", "items": {"type": "string"}}},
    "required": ["tables"],
    "additionalProperties": False,
}
LOG_SCHEMA = {"type": "object", "properties": {"log": {"type": "string"}}, "required": ["log"]}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


@pytest.fixture
def providers(fake: FakeLLM, fast_settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    fast_settings.PLANNERWEB_OPENAI_BASE_URL = fake.url + "/v1"
    fast_settings.PLANNERWEB_ANTHROPIC_BASE_URL = fake.url
    fast_settings.PLANNERWEB_PLANNER_SDK_RETRIES = 1
    fast_settings.PLANNERWEB_PLANNER_TIMEOUT_SECONDS = 5.0
    fast_settings.PLANNERWEB_PLANNER_REPAIR_ROUNDS = 1
    return fast_settings


def llm_tool(name: str = "summarise", **config: Any) -> Tool:
    return Tool.objects.create(
        name=name,
        kind=Tool.Kind.LLM,
        config={"prompt": "Which tables does this log name? {log}", "provider": "openai", **config},
        parameters_schema=LOG_SCHEMA,
        timeout_seconds=10,
    )


def plan(key: str, log: str = "ALTER TABLE orders; ALTER TABLE users") -> dict[str, Any]:
    return {
        "goal": "summarise then record",
        "steps": [
            {"id": "think", "action": "summarise", "params": {"log": log}},
            {
                "id": "keep",
                "action": "record",
                "params": {"key": key, "label": "summary", "value": "{{ steps.think.result }}"},
                "depends_on": ["think"],
            },
        ],
    }


def calls_of(run: Run) -> list[dict[str, Any]]:
    events = TranscriptEvent.objects.filter(run=run, kind="planner.call").order_by("seq")
    return [e.payload for e in events]


@pytest.mark.django_db(transaction=True)
def test_a_text_answer_becomes_the_result_a_later_step_references(
    fake: FakeLLM, providers: Any, execute: Callable[..., Run], key: str
) -> None:
    llm_tool()
    fake.queue(Answer(body=openai_response(json.dumps({"answer": "orders and users"}))))
    run = execute(plan(key))
    assert run.status == "succeeded", run.stop_reason
    step = run.current_plan.steps.get(key="think")
    assert step.result == "orders and users"
    assert toolbox.CALLS[key] == ["summary"]
    sent = fake.requests[0].body
    assert sent["input"][0]["content"].endswith("ALTER TABLE orders; ALTER TABLE users")
    assert sent["text"]["format"]["schema"]["required"] == ["answer"]
    (row,) = LlmCall.objects.filter(run=run)
    assert (row.purpose, row.tokens_in, row.tokens_out, row.ok) == ("tool", 1200, 300, True)
    (event,) = calls_of(run)
    assert event["step"] == "think" and event["purpose"] == "tool"
    assert TranscriptEvent.objects.get(run=run, kind="planner.call").role == "executor"


@pytest.mark.django_db(transaction=True)
def test_a_structured_answer_through_anthropic_is_the_step_result(
    fake: FakeLLM, providers: Any, execute: Callable[..., Run], key: str
) -> None:
    llm_tool(provider="anthropic", model="claude-x", output_schema=SUMMARY, max_tokens=200)
    fake.queue(Answer(body=anthropic_tool_use({"tables": ["orders"]}, name="submit_output")))
    run = execute(plan(key))
    assert run.status == "succeeded", run.stop_reason
    assert run.current_plan.steps.get(key="think").result == {"tables": ["orders"]}
    sent = fake.requests[0].body
    assert sent["tools"][0]["input_schema"] == SUMMARY
    assert (sent["model"], sent["max_tokens"]) == ("claude-x", 200)


@pytest.mark.django_db(transaction=True)
def test_an_answer_breaking_the_schema_is_repaired_with_the_problem_fed_back(
    fake: FakeLLM, providers: Any, execute: Callable[..., Run], key: str
) -> None:
    llm_tool(output_schema=SUMMARY)
    fake.queue(
        Answer(body=openai_response(json.dumps({"tables": "orders"}))),
        Answer(body=openai_response(json.dumps({"tables": ["orders"]}))),
    )
    run = execute(plan(key))
    assert run.status == "succeeded", run.stop_reason
    assert run.current_plan.steps.get(key="think").result == {"tables": ["orders"]}
    feedback = fake.requests[1].body["input"][-1]["content"]
    assert "does not follow the output schema: tables" in feedback
    assert [c["attempt"] for c in calls_of(run)] == [1, 2]


@pytest.mark.django_db(transaction=True)
def test_an_answer_still_invalid_after_the_repair_rounds_fails_the_step(
    fake: FakeLLM, providers: Any, execute: Callable[..., Run], key: str
) -> None:
    llm_tool(output_schema=SUMMARY)
    fake.queue(*[Answer(body=openai_response("not json at all")) for _ in range(2)])
    run = execute(plan(key))
    think = run.current_plan.steps.get(key="think")
    assert think.status == "failed"
    assert "still invalid after 1 repair round(s)" in think.error
    assert toolbox.CALLS[key] == []


@pytest.mark.django_db(transaction=True)
def test_a_refusal_fails_the_step_and_is_recorded(
    fake: FakeLLM, providers: Any, execute: Callable[..., Run], key: str
) -> None:
    llm_tool()
    fake.queue(Answer(body=openai_response(None, refusal="I can't help with that.")))
    run = execute(plan(key))
    think = run.current_plan.steps.get(key="think")
    assert think.status == "failed" and "the model declined" in think.error
    (row,) = LlmCall.objects.filter(run=run)
    assert not row.ok and "refused" in row.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("status", "message"), [(429, "rate limit: still 429"), (500, "server error: HTTP 500")]
)
def test_rate_limits_and_server_errors_left_after_the_sdk_retries_fail_the_step(
    fake: FakeLLM,
    providers: Any,
    execute: Callable[..., Run],
    key: str,
    status: int,
    message: str,
) -> None:
    llm_tool()
    fake.queue(*[openai_error(status, "busy", {"retry-after-ms": "5"}) for _ in range(2)])
    run = execute(plan(key))
    think = run.current_plan.steps.get(key="think")
    assert think.status == "failed" and message in think.error
    assert len(fake.requests) == 2  # the SDK's own retry, then the step gave up
    (row,) = LlmCall.objects.filter(run=run)
    assert not row.ok


@pytest.mark.django_db(transaction=True)
def test_a_rate_limit_the_sdk_retries_through_still_answers(
    fake: FakeLLM, providers: Any, execute: Callable[..., Run], key: str
) -> None:
    llm_tool()
    fake.queue(
        openai_error(429, "slow down", {"retry-after-ms": "5"}),
        Answer(body=openai_response(json.dumps({"answer": "orders"}))),
    )
    run = execute(plan(key))
    assert run.status == "succeeded", run.stop_reason
    assert run.current_plan.steps.get(key="think").result == "orders"


@pytest.mark.django_db(transaction=True)
def test_secrets_in_the_prompt_and_the_answer_are_stored_redacted(
    fake: FakeLLM, providers: Any, execute: Callable[..., Run], key: str
) -> None:
    secret, other = "sk-proj-" + "Q" * 40, "sk-proj-" + "Z" * 40
    llm_tool()
    fake.queue(Answer(body=openai_response(json.dumps({"answer": f"the key is {other}"}))))
    run = execute(plan(key, log=f"export OPENAI_API_KEY={secret}"))
    assert run.status == "succeeded", run.stop_reason
    # The step's params were redacted when the plan was stored: the model never saw the key.
    assert secret not in json.dumps(fake.requests[0].body)
    stored = json.dumps(calls_of(run)) + json.dumps(run.current_plan.steps.get(key="think").result)
    assert secret not in stored and other not in stored
    assert stored.count("[REDACTED:openai_key") >= 3  # prompt, response, result


@pytest.mark.django_db(transaction=True)
def test_the_tokens_of_an_llm_step_count_against_the_run_budget(
    fake: FakeLLM, providers: Any, key: str
) -> None:
    llm_tool()
    Tool.objects.create(
        name="record",
        kind=Tool.Kind.PYTHON,
        config={"callable": "tests.runs.toolbox.record"},
        parameters_schema={"type": "object"},
    )
    fake.queue(Answer(body=openai_response(json.dumps({"answer": "orders"}))))
    run = run_submit_plan(
        title="t", document=plan(key), submitted_by=None, budgets={"budget_max_tokens": 1000}
    )
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status != "succeeded"
    assert "max_tokens" in run.stop_reason
    assert toolbox.CALLS[key] == []  # the step after the model call never started


@pytest.mark.django_db(transaction=True)
def test_offline_the_recorded_answer_is_used_and_counted(
    fast_settings: Any, execute: Callable[..., Run], key: str
) -> None:
    fast_settings.PLANNERWEB_PLANNER = "playbook"
    Tool.objects.create(
        name="summarise",
        kind=Tool.Kind.LLM,
        config={"prompt": "Tables in {log}?", "recorded": "orders"},
        parameters_schema=LOG_SCHEMA,
    )
    run = execute(plan(key))
    assert run.status == "succeeded", run.stop_reason
    assert run.current_plan.steps.get(key="think").result == "orders"
    (row,) = LlmCall.objects.filter(run=run)
    assert row.provider == "recorded" and row.tokens_in > 0


def test_the_planner_model_is_used_only_with_the_planners_provider(settings: Any) -> None:
    settings.PLANNERWEB_PLANNER = "openai"
    settings.PLANNERWEB_PLANNER_MODEL = "gpt-x"
    assert model_name({}, "openai") == "gpt-x"
    assert model_name({}, "anthropic") == ""  # the provider's own default, not gpt-x
    assert model_name({"model": "claude-y"}, "anthropic") == "claude-y"

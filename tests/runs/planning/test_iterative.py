"""Iterative mode end to end through the real engine: one scripted model call per step."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import LlmCall, Plan, Run, RunStatus, Step, StepStatus, TranscriptEvent
from runs.planning.iterative import NextStep, step_json_schema
from runs.planning.options import PlannerOptionsError, default_options
from runs.planning.providers import FACTORIES
from runs.planning.providers.openai import OpenAIProvider
from runs.planning.providers.scripted import ScriptedProvider
from runs.planning.questions import ask_json_schema
from tests.runs import toolbox
from tests.runs.planning.providers.fake_llm import Answer, FakeLLM, openai_response, running

pytestmark = pytest.mark.django_db(transaction=True)


def step(
    tool: str | None, key: str = "", label: str = "", *, stop: bool = False, **extra: Any
) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "thought": f"next: {label or 'done'}",
        "next_step": f"record {label}" if tool else "",
        "tool": tool,
        "arguments": {"key": key, "label": label} if tool else None,
        "stop": stop,
        "confidence": extra.pop("confidence", 0.8),
    }
    if "arguments" in extra:
        answer["arguments"] = extra.pop("arguments")
    return {**answer, **extra}


@pytest.fixture
def iterative(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> Callable[..., tuple[Run, ScriptedProvider]]:
    def start(*script: Any, **options: Any) -> tuple[Run, ScriptedProvider]:
        model = ScriptedProvider(script)
        model.name = "openai"
        monkeypatch.setitem(FACTORIES, "openai", lambda **_: model)
        run = run_submit_task(
            title="record labels one by one",
            submitted_by=operator,
            planner="openai",
            mode="iterative",
            **options,
        )
        return run, model

    return start


def kinds(run: Run, kind: str) -> list[dict[str, Any]]:
    return list(
        TranscriptEvent.objects.filter(run=run, kind=kind)
        .order_by("seq")
        .values_list("payload", flat=True)
    )


def test_each_step_is_one_call_its_result_feeds_the_next_and_stop_ends_the_run(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    key = uuid.uuid4().hex
    second = step(
        "record",
        arguments={"key": key, "label": "b", "value": "{{ steps.step-1.result.path }}"},
        confidence=0.6,
    )
    run, model = iterative(
        step("record", key, "a", confidence=0.9), second, step(None, stop=True, confidence=1)
    )
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "b"]
    v1, v2 = Plan.objects.filter(run=run).order_by("version")
    assert v2.parent_id == v1.pk and v1.source == v2.source == Plan.Source.PLANNER
    assert v2.diff["added"] == ["step-2"] and v2.diff["kept"] == ["step-1"]
    steps = {s.key: s for s in Step.objects.filter(plan=v2)}
    assert steps["step-1"].confidence == 0.9 and steps["step-2"].confidence == 0.6
    assert steps["step-2"].result["value"] == "/backups/a.db"  # the reference resolved
    assert all(s.status == StepStatus.SUCCEEDED for s in steps.values())
    # The second call saw the first step's result; the third saw both.
    assert "/backups/a.db" in model.requests[1].messages[0]["content"]
    assert '"label": "b"' in model.requests[2].messages[0]["content"]
    # Before any step, and between steps, the planner may ask a clarifying question.
    assert model.requests[0].schema == ask_json_schema(step_json_schema())
    assert model.requests[1].schema == ask_json_schema(step_json_schema())
    assert [c.purpose for c in LlmCall.objects.filter(run=run).order_by("id")] == ["step"] * 3
    events = kinds(run, "planner.step")
    assert [(e["number"], e["tool"], e["stop"]) for e in events] == [
        (1, "record", False),
        (2, "record", False),
        (3, None, True),
    ]
    assert [e["version"] for e in events[:2]] == [1, 2]
    statuses = [p["to_status"] for p in kinds(run, "run.status")]
    assert statuses == ["planning", "executing", "succeeded"]  # no replanning on the way


def test_stop_with_a_tool_makes_that_step_the_last_one(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    key = uuid.uuid4().hex
    run, model = iterative(step("record", key, "only", stop=True))
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["only"]
    assert len(model.requests) == 1  # no call after the step marked stop
    assert Plan.objects.filter(run=run).count() == 1


def test_max_steps_ends_a_planner_that_never_stops(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    key = uuid.uuid4().hex
    run, model = iterative(*(step("record", key, f"s{i}") for i in range(5)), max_steps=2)
    assert run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "max steps reached (2 of 2)" in run.stop_reason
    assert toolbox.CALLS[key] == ["s0", "s1"]
    assert len(model.requests) == 2
    assert LlmCall.objects.filter(run=run, purpose="replan").count() == 0  # no retry of the loop


def test_a_failed_step_is_fed_back_and_spends_a_replan(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    key = uuid.uuid4().hex
    run, model = iterative(
        step("record", key, "a"),
        step("fail", key, "boom"),
        step("record", key, "c"),
        step(None, stop=True),
    )
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "boom", "c"]
    assert "boom failed on purpose" in model.requests[2].messages[0]["content"]
    assert model.requests[2].schema == step_json_schema()  # after a failure: a step, no question
    purposes = [c.purpose for c in LlmCall.objects.filter(run=run).order_by("id")]
    assert purposes == ["step", "step", "replan", "step"]
    v3 = Plan.objects.get(run=run, version=3)
    assert v3.source == Plan.Source.REPLANNER
    assert v3.diff["removed"] == ["step-2"] and v3.diff["added"] == ["step-3"]
    assert Step.objects.get(plan=v3, key="step-3").depends_on == ["step-1"]
    statuses = [p["to_status"] for p in kinds(run, "run.status")]
    assert statuses == ["planning", "executing", "replanning", "executing", "succeeded"]


def test_failures_beyond_the_replan_budget_fail_the_run_with_a_report(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    key = uuid.uuid4().hex
    run, _ = iterative(step("fail", key, "x"), step("fail", key, "y"), max_replans=1)
    assert run_execute(run_id=run.pk) == RunStatus.FAILED
    run.refresh_from_db()
    assert "replans exhausted (1 of 1)" in run.stop_reason
    assert toolbox.CALLS[key] == ["x", "y"]
    assert kinds(run, "run.failure_report")[0]["failed"][0]["id"] == "step-2"


def test_an_invalid_step_gets_a_repair_round_naming_the_problem(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    key = uuid.uuid4().hex
    run, model = iterative(
        {"thought": "hm", "stop": False},  # neither a tool nor stop
        step("drop_database", key, "x"),
        step("record", key, "a", stop=True),
    )
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert "give a tool to call, or stop: true" in model.requests[1].messages[-1]["content"]
    assert "drop_database" in model.requests[2].messages[-1]["content"]
    assert [c.purpose for c in LlmCall.objects.filter(run=run).order_by("id")] == [
        "step",
        "repair",
        "repair",
    ]


def test_a_planner_that_stops_before_any_step_escalates_the_run(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    run, _ = iterative(step(None, stop=True, thought="nothing to do"))
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    run.refresh_from_db()
    assert "stopped before taking any step" in run.stop_reason
    assert "nothing to do" in run.stop_reason
    assert not Step.objects.filter(run=run).exists()


def test_iterative_mode_needs_a_model_planner(settings: Any) -> None:
    with pytest.raises(PlannerOptionsError) as caught:
        default_options(planner="playbook", mode="iterative")
    assert caught.value.field == "mode"
    with pytest.raises(PlannerOptionsError) as caught:
        default_options(planner="openai", mode="iterative", max_steps=0)
    assert caught.value.field == "max_steps"


def test_the_step_schema_refuses_an_answer_without_tool_or_stop() -> None:
    NextStep.model_validate({"tool": "record", "arguments": {}})
    NextStep.model_validate({"stop": True})
    with pytest.raises(ValueError, match="give a tool"):
        NextStep.model_validate({"thought": "x"})
    assert {"thought", "tool", "arguments", "stop", "confidence"} <= set(
        step_json_schema()["properties"]
    )


# --- through the real OpenAI SDK ------------------------------------------------------------
@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


def test_iterative_run_through_the_real_openai_sdk(
    fake: FakeLLM,
    planner_tools: Any,
    planner_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    operator: Any,
) -> None:
    key = uuid.uuid4().hex
    fake.queue(
        Answer(body=openai_response(json.dumps(step("record", key, "a")))),
        Answer(body=openai_response(json.dumps(step(None, stop=True)))),
    )
    monkeypatch.setitem(
        FACTORIES,
        "openai",
        lambda **_: OpenAIProvider(base_url=fake.url + "/v1", api_key="sk-test-abcdefghijklmnop"),
    )
    run = run_submit_task(
        title="record one label", submitted_by=operator, planner="openai", mode="iterative"
    )
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a"]
    first = fake.requests[0].body
    assert first["text"]["format"]["name"] == "next_step"
    assert first["text"]["format"]["schema"] == ask_json_schema(step_json_schema())
    assert '"label": "a"' in fake.requests[1].body["input"][-1]["content"]
    calls = list(LlmCall.objects.filter(run=run))
    assert len(calls) == 2 and all(c.tokens_in == 1200 for c in calls)


# --- the plan command ----------------------------------------------------------------------
def test_the_plan_command_submits_an_iterative_task_and_waits_for_it(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from io import StringIO

    from django.core.management import call_command

    key = uuid.uuid4().hex
    model = ScriptedProvider([step("record", key, "a"), step(None, stop=True)])
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: model)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted")  # refused without it, as by the API
    out = StringIO()
    call_command(
        "plan",
        "record a label",
        "--provider",
        "openai",
        "--mode",
        "iterative",
        "--max-steps",
        "3",
        "--wait",
        stdout=out,
    )
    run = Run.objects.select_related("task").get()
    lines = out.getvalue().splitlines()
    assert lines[0] == f"run {run.pk} executing"
    assert lines[-1].startswith(f"run {run.pk} succeeded")
    assert run.task.max_steps == 3 and toolbox.CALLS[key] == ["a"]


def test_the_plan_command_without_wait_prints_the_run_id_for_a_worker(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from io import StringIO

    from django.core.management import call_command

    model = ScriptedProvider([step("record", "k", "a")])
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: model)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-scripted")
    out = StringIO()
    call_command("plan", "record", "--provider", "openai", "--mode", "iterative", stdout=out)
    run = Run.objects.get()
    assert out.getvalue().splitlines() == [
        f"run {run.pk} executing",
        "a worker will execute it (make run, or manage.py db_worker)",
    ]
    assert run.status == RunStatus.EXECUTING and run.current_plan is not None


def test_every_step_call_states_the_task_s_max_steps_the_first_one_too(
    iterative: Callable[..., tuple[Run, ScriptedProvider]],
) -> None:
    key = uuid.uuid4().hex
    run, model = iterative(step("record", key, "a"), step(None, stop=True), max_steps=5)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    first, second = model.requests
    assert "This is step 1 of at most 5;" in first.messages[0]["content"]
    assert "This is step 2 of at most 5;" in second.messages[0]["content"]
    assert "- at most 5 steps in all" in first.system
    assert "- at most 5 steps in all" in second.system

"""Planner logic with a scripted model: the prompt, repair, modes, ensembles."""

from __future__ import annotations

from typing import Any

import pytest

from runs.planning.options import PlannerOptions, PlannerOptionsError
from runs.planning.planner import plan_task, plan_with_model, run_chain
from runs.planning.prompt import context_for, system_prompt, task_message
from runs.planning.providers import FACTORIES
from runs.planning.providers.base import ProviderError
from runs.planning.providers.scripted import ScriptedProvider
from runs.tools.registry import load_tool_specs
from tests.runs.planning.conftest import good_plan

pytestmark = pytest.mark.django_db


def opts(**kw: Any) -> PlannerOptions:
    return PlannerOptions(planner=kw.pop("planner", "openai"), **kw)


def scripted(monkeypatch: pytest.MonkeyPatch, name: str, *script: Any) -> ScriptedProvider:
    provider = ScriptedProvider(script)
    provider.name = name
    monkeypatch.setitem(FACTORIES, name, lambda **_: provider)
    return provider


def test_the_prompt_lists_enabled_tools_with_schemas_limits_and_the_task(
    planner_tools: Any,
) -> None:
    context = context_for(task="Record a label", description="for the audit", max_parallel=3)
    system = system_prompt(context)
    assert "- record: Record a label (test tool)." in system
    assert '"required": ["key", "label"]' in system
    assert "secret_tool" not in system  # disabled tools are not offered
    assert "3 run at the same time" in system
    message = task_message(context)
    assert message.startswith("Task: Record a label") and "for the audit" in message


def test_a_valid_first_answer_needs_no_repair(planner_tools: Any) -> None:
    model = ScriptedProvider([good_plan()])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert outcome.ok and outcome.confidence == 0.9
    assert [c.purpose for c in outcome.calls] == ["plan"]
    assert outcome.mode == "upfront"


def test_unknown_tools_get_a_repair_round_naming_them(planner_tools: Any) -> None:
    bad = {"steps": [{"id": "a", "action": "rm_rf", "params": {}}]}
    model = ScriptedProvider([bad, good_plan()])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert outcome.ok
    feedback = model.requests[1].messages[-1]["content"]
    assert "rm_rf" in feedback and "steps[0].action" in feedback


def test_bad_params_and_disabled_tools_are_fed_back(planner_tools: Any) -> None:
    bad = {
        "steps": [
            {"id": "a", "action": "record", "params": {"label": 5}},
            {"id": "b", "action": "secret_tool", "params": {}},
        ]
    }
    model = ScriptedProvider([bad, good_plan()])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert outcome.ok
    feedback = model.requests[1].messages[-1]["content"]
    assert "key" in feedback and "secret_tool" in feedback and "disabled" in feedback


def test_still_invalid_after_the_configured_rounds_gives_a_clear_reason(planner_tools: Any) -> None:
    bad = {"steps": [{"id": "a", "action": "nope"}]}
    model = ScriptedProvider(["{not json", bad, bad, bad])
    outcome = plan_with_model(
        model, context_for(task="t"), opts(repair_rounds=2), tools=load_tool_specs()
    )
    assert not outcome.ok
    assert len(model.requests) == 3
    assert "still invalid after 2 repair round(s)" in outcome.reason
    assert "nope" in outcome.reason


def test_a_refusal_ends_the_attempt_without_repair(planner_tools: Any) -> None:
    from runs.planning.providers.base import ModelReply

    model = ScriptedProvider([ModelReply(text="", refusal="no thanks")])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert not outcome.ok and "refused to plan: no thanks" in outcome.reason
    assert len(model.requests) == 1


def test_a_provider_error_becomes_the_reason(planner_tools: Any) -> None:
    model = ScriptedProvider([ProviderError("openai rate limit", kind="rate_limited")])
    outcome = plan_with_model(model, context_for(task="t"), opts(), tools=load_tool_specs())
    assert not outcome.ok and "rate limit" in outcome.reason
    assert outcome.calls[0].error == "openai rate limit"


def test_auto_mode_with_a_one_step_answer_runs_direct(planner_tools: Any) -> None:
    one = {"steps": [{"id": "only", "action": "record", "params": {"key": "k", "label": "x"}}]}
    outcome = plan_with_model(
        ScriptedProvider([one]), context_for(task="t", mode="auto"), opts(), tools=load_tool_specs()
    )
    assert outcome.ok and outcome.mode == "direct"


def test_direct_mode_rejects_a_multi_step_plan_and_says_so(planner_tools: Any) -> None:
    one = {"steps": [{"id": "only", "action": "record", "params": {"key": "k", "label": "x"}}]}
    model = ScriptedProvider([good_plan(), one])
    context = context_for(task="t", mode="direct")
    outcome = plan_with_model(model, context, opts(mode="direct"), tools=load_tool_specs())
    assert outcome.ok and outcome.mode == "direct"
    assert "Direct mode runs exactly one tool call" in model.requests[1].messages[-1]["content"]
    assert "return exactly one step" in model.requests[0].system


def test_options_are_checked() -> None:
    with pytest.raises(PlannerOptionsError, match="unknown planner"):
        PlannerOptions(planner="gpt-magic").check()
    with pytest.raises(PlannerOptionsError, match="unknown mode"):
        PlannerOptions(planner="openai", mode="yolo").check()


def test_the_chain_moves_on_when_confidence_is_low(
    planner_tools: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.PLANNERWEB_ENSEMBLE_MIN_CONFIDENCE = 0.7
    settings.PLANNERWEB_PLANNER_CHAIN = [
        {"provider": "openai", "model": "fast"},
        {"provider": "anthropic", "model": "strong"},
    ]
    fast = scripted(monkeypatch, "openai", good_plan(confidence=0.4))
    strong = scripted(monkeypatch, "anthropic", good_plan(confidence=0.95))
    outcome = plan_task(context_for(task="t"), opts(planner="chain"))
    assert outcome.ok and outcome.planner == "anthropic/strong"
    assert outcome.confidence == 0.95
    assert len(fast.requests) == 1 and len(strong.requests) == 1
    assert [c.model for c in outcome.calls] == ["fast", "strong"]


def test_the_chain_moves_on_after_two_invalid_answers(
    planner_tools: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.PLANNERWEB_PLANNER_CHAIN = [{"provider": "openai"}, {"provider": "anthropic"}]
    bad = {"steps": [{"id": "a", "action": "nope"}]}
    scripted(monkeypatch, "openai", bad, bad)
    scripted(monkeypatch, "anthropic", good_plan())
    outcome = plan_task(context_for(task="t"), opts(planner="chain", repair_rounds=1))
    assert outcome.ok and outcome.planner.startswith("anthropic/")
    assert [c.purpose for c in outcome.calls] == ["plan", "repair", "plan"]


def test_when_no_member_is_sure_enough_the_most_confident_plan_wins(planner_tools: Any) -> None:
    members = [opts(planner="a", model="m1"), opts(planner="b", model="m2")]
    a, b = (
        ScriptedProvider([good_plan(confidence=0.3)]),
        ScriptedProvider([good_plan(confidence=0.5)]),
    )
    a.name, b.name = "a", "b"
    outcome = run_chain(
        context_for(task="t"), members, tools=load_tool_specs(), providers={"a": a, "b": b}
    )
    assert outcome.ok and outcome.planner == "b/m2"
    assert "no planner reached confidence" in outcome.reason

"""The playbook planner's offline replan: a failed step's declared fallback takes its place."""

from __future__ import annotations

from typing import Any

import pytest

from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_task
from runs.planning.prompt import ReplanContext, context_for
from runs.planning.schema import plan_json_schema
from runs.planning.validation import validate_with_registry
from runs.tools.registry import load_tool_specs

pytestmark = pytest.mark.django_db


def plan() -> dict[str, Any]:
    return {
        "goal": "record three labels",
        "steps": [
            {"id": "a", "action": "record", "params": {"key": "k", "label": "a"}},
            {
                "id": "b",
                "action": "fail",
                "params": {"key": "k", "label": "b"},
                "depends_on": ["a"],
                "fallback": {"action": "record", "params": {"key": "k", "label": "b2"}},
            },
            {
                "id": "c",
                "action": "record",
                "params": {"key": "k", "label": "c"},
                "depends_on": ["b"],
            },
        ],
        "rollback": [{"action": "record", "params": {"key": "k", "label": "undo"}}],
    }


def replan(document: Any, failed: str = "b") -> Any:
    context = context_for(
        task="t",
        mode="upfront",
        replan=ReplanContext(
            finished=[
                {"id": "a", "action": "record", "params": {"key": "k", "label": "a"}, "result": {}}
            ],
            failed=[{"id": failed, "action": "fail", "params": {}, "error": "exit code 1"}],
            remaining=[{"id": "c", "action": "record", "params": {"key": "k", "label": "c"}}],
            plan=document,
        ),
    )
    kept = [{"id": "a", "action": "record", "params": {"key": "k", "label": "a"}, "depends_on": []}]
    return plan_task(context, PlannerOptions(planner="playbook"), kept=kept)


def test_the_failed_step_gives_way_to_its_fallback_under_the_same_id(planner_tools: Any) -> None:
    outcome = replan(plan())
    assert outcome.ok and outcome.planner == "playbook:fallback" and not outcome.calls
    steps = {s["id"]: s for s in outcome.document["steps"]}
    assert list(steps) == ["a", "b", "c"]
    assert (steps["b"]["action"], steps["b"]["params"]) == ("record", {"key": "k", "label": "b2"})
    assert steps["b"]["depends_on"] == ["a"] and "fallback" not in steps["b"]
    assert "exit code 1" in steps["b"]["description"]
    assert outcome.document["rollback"] == plan()["rollback"]


def test_a_failed_step_without_a_fallback_is_not_replanned(planner_tools: Any) -> None:
    document = plan()
    del document["steps"][1]["fallback"]
    outcome = replan(document)
    assert not outcome.ok
    assert "no fallback declared for the failed step (b)" in outcome.reason


def test_the_list_form_of_a_plan_is_replanned_too(planner_tools: Any) -> None:
    outcome = replan(plan()["steps"])
    assert outcome.ok and [s["id"] for s in outcome.document["steps"]] == ["a", "b", "c"]


def test_a_fallback_is_checked_against_the_registry_when_the_plan_is_submitted(
    planner_tools: Any,
) -> None:
    document = plan()
    document["steps"][1]["fallback"] = {"action": "nope", "params": {}}
    validated = validate_with_registry(document, tools=load_tool_specs())
    assert [(p.path, p.code) for p in validated.problems] == [
        ("steps[1].fallback.action", "unknown_tool")
    ]
    assert "The fallback of step 'b'" in validated.problems[0].message


def test_models_never_see_the_fallback_field() -> None:
    schema = plan_json_schema()
    step = next(d for name, d in schema["$defs"].items() if name == "PlanStep")
    assert "fallback" not in step["properties"]

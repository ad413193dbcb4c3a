"""Hybrid handoff: a scripted model hands the work to a registered workflow instead of planning it."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import Run, RunStatus, Step, TranscriptEvent, Workflow
from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_with_model
from runs.planning.prompt import context_for, system_prompt
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
from runs.tools.registry import load_tool_specs
from tests.runs.planning.conftest import good_plan

pytestmark = pytest.mark.django_db


@pytest.fixture
def archive_workflow(planner_tools: Any) -> Workflow:
    return Workflow.objects.create(
        name="archive-table",
        description="Copy a table to the archive, then record that it is done.",
        parameters_schema={
            "type": "object",
            "properties": {
                "key": {"type": "string"},
                "table": {"type": "string"},
                "copies": {"type": "integer", "default": 2},
            },
            "required": ["key", "table"],
        },
        document={
            "goal": "archive {{ params.table }}",
            "steps": [
                {
                    "id": "copy",
                    "action": "record",
                    "params": {
                        "key": "{{ params.key }}",
                        "label": "copy {{ params.table }}",
                        "value": "{{ params.copies }}",
                    },
                },
                {
                    "id": "done",
                    "action": "record",
                    "params": {
                        "key": "{{ params.key }}",
                        "label": "done",
                        "value": "{{ steps.copy.result.label }}",
                    },
                    "depends_on": ["copy"],
                },
            ],
        },
    )


def _opts() -> PlannerOptions:
    return PlannerOptions(planner="openai", repair_rounds=2)


def test_a_handoff_becomes_the_workflows_plan_with_its_params_filled(
    archive_workflow: Workflow,
) -> None:
    model = ScriptedProvider(
        [{"handoff": "archive-table", "params": {"key": "k", "table": "orders"}}]
    )
    context = context_for(task="archive the orders table")

    outcome = plan_with_model(model, context, _opts(), tools=load_tool_specs())

    assert outcome.ok, outcome.reason
    assert outcome.handoff == {
        "workflow": "archive-table",
        "params": {"key": "k", "table": "orders", "copies": 2},
        "steps": 2,
    }
    copy = outcome.document["steps"][0]
    assert copy["params"] == {"key": "k", "label": "copy orders", "value": 2}  # typed, not text
    assert outcome.document["goal"] == "archive orders"
    # The planner was told of the workflow and may answer with it.
    assert "archive-table: Copy a table" in model.requests[0].system
    assert model.requests[0].schema["properties"]["handoff"]["enum"] == ["archive-table"]


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        ({"handoff": "nope", "params": {}}, "no enabled workflow named 'nope'"),
        ({"handoff": "archive-table", "params": {"key": "k"}}, "table"),
        ({"handoff": "archive-table", "params": {"key": "k", "table": 3}}, "3"),
        ({"handoff": "archive-table", "params": "orders"}, "must be an object"),
    ],
)
def test_a_bad_handoff_gets_a_repair_round_saying_why(
    archive_workflow: Workflow, answer: dict[str, Any], said: str
) -> None:
    model = ScriptedProvider([answer, good_plan()])

    outcome = plan_with_model(model, context_for(task="t"), _opts(), tools=load_tool_specs())

    assert outcome.ok and outcome.handoff is None  # the repaired answer is a plan
    feedback = model.requests[1].messages[-1]["content"]
    assert said in feedback


def test_a_disabled_workflow_is_neither_offered_nor_taken(archive_workflow: Workflow) -> None:
    archive_workflow.enabled = False
    archive_workflow.save()
    answer = {"handoff": "archive-table", "params": {"key": "k", "table": "t"}}
    model = ScriptedProvider([answer, answer, answer])

    outcome = plan_with_model(model, context_for(task="t"), _opts(), tools=load_tool_specs())

    assert not outcome.ok
    assert "no enabled workflow named 'archive-table'" in outcome.reason
    assert "Workflows" not in system_prompt(context_for(task="t"))
    assert "handoff" not in model.requests[0].schema["properties"]


@pytest.mark.django_db(transaction=True)  # the planner reads the registry from its own thread
def test_a_run_handed_off_executes_the_workflow_and_says_so(
    archive_workflow: Workflow,
    planner_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    calls: list[str],
) -> None:
    model = ScriptedProvider(
        [{"handoff": "archive-table", "params": {"key": key, "table": "orders"}}]
    )
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: model)
    run = run_submit_task(title="archive the orders table", submitted_by=None, planner="openai")

    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED

    assert calls == ["copy orders", "done"]
    done = Step.objects.get(run=run, key="done")
    assert done.result["value"] == "copy orders"  # the workflow used the results so far
    event = TranscriptEvent.objects.get(run=run, kind="planner.handoff")
    assert event.payload["workflow"] == "archive-table" and event.payload["steps"] == 2


@pytest.mark.django_db(transaction=True)
def test_an_iterative_planner_hands_off_after_its_first_step(
    archive_workflow: Workflow,
    planner_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    calls: list[str],
) -> None:
    first = {
        "thought": "look first",
        "next_step": "record the start",
        "tool": "record",
        "arguments": {"key": key, "label": "start"},
    }
    handoff = {"handoff": "archive-table", "params": {"key": key, "table": "orders"}}
    model = ScriptedProvider([first, handoff])
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: model)
    run = run_submit_task(
        title="archive the orders table", submitted_by=None, planner="openai", mode="iterative"
    )

    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED, Run.objects.get(pk=run.pk).stop_reason

    assert calls == ["start", "copy orders", "done"]
    copy = Step.objects.get(run=run, plan=run.plans.latest("version"), key="copy")
    assert copy.depends_on == ["step-1"]  # the workflow starts after the steps so far
    assert len(model.requests) == 2  # no model call after the workflow: it finished the task


def test_the_api_lists_workflows_for_signed_in_users_only(
    archive_workflow: Workflow, operator: Any
) -> None:
    client = Client()
    assert client.get("/api/workflows").status_code == 401
    client.force_login(operator)
    body = client.get("/api/workflows").json()
    assert body == [
        {
            "name": "archive-table",
            "description": "Copy a table to the archive, then record that it is done.",
            "enabled": True,
            "parameters_schema": archive_workflow.parameters_schema,
            "steps": 2,
        }
    ]

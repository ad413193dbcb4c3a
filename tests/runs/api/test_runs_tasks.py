"""POST /api/tasks without a plan: a task for a planner, its options checked (422 per field)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.lifecycle.claim import run_execute
from runs.models import LlmCall, Run, RunStatus, Task, Tool
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
from tests.runs.api.conftest import VALID_PLAN, api_as

pytestmark = pytest.mark.django_db


def test_a_task_with_planner_options_is_queued_for_planning_with_them(
    operator: User, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    settings.PLANNERWEB_PLANNER_TEMPERATURE = 0.3
    response = api_as(operator).post(
        "/tasks",
        {
            "title": "Back up the database",
            "description": "prod only",
            "planner": "openai",
            "model": "gpt-4.1",
            "mode": "iterative",
            "max_tokens": 900,
            "max_replans": 2,
            "max_steps": 7,
            "max_parallel": 2,
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    run = Run.objects.select_related("task").get(pk=body["id"])
    assert body["status"] == run.status == RunStatus.QUEUED and body["plan_version"] is None
    task = run.task
    assert (task.planner, task.model, task.mode, task.max_tokens) == (
        "openai",
        "gpt-4.1",
        "iterative",
        900,
    )
    assert (task.max_replans, task.max_steps, task.temperature) == (2, 7, 0.3)
    assert run.max_parallel == 2 and task.description == "prod only"


@pytest.mark.django_db(transaction=True)
def test_a_planned_task_from_the_api_executes_with_the_model_it_named(
    operator: User, noop_tool: Tool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-key")
    model = ScriptedProvider([VALID_PLAN])
    model.name = "anthropic"
    monkeypatch.setitem(FACTORIES, "anthropic", lambda **_: model)
    body = api_as(operator).post("/tasks", {"title": "Say hello", "planner": "anthropic"}).json()
    assert run_execute(run_id=body["id"]) == RunStatus.SUCCEEDED
    assert LlmCall.objects.get(run_id=body["id"]).provider == "anthropic"
    detail = api_as(operator).get(f"/runs/{body['id']}").json()
    assert detail["plan_version"] == 1 and detail["steps_total"] == 2


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"title": "t", "planner": "oracle"}, "invalid_planner_options", "planner"),
        (
            {"title": "t", "planner": "openai", "mode": "sideways"},
            "invalid_planner_options",
            "mode",
        ),
        (
            {"title": "t", "planner": "playbook", "mode": "iterative"},
            "invalid_planner_options",
            "mode",
        ),
        ({"title": "t", "planner": "openai", "temperature": 3}, "invalid_input", "temperature"),
        ({"title": "t", "planner": "openai", "max_tokens": 0}, "invalid_input", "max_tokens"),
        ({"title": "t", "planner": "openai", "max_steps": 101}, "invalid_input", "max_steps"),
        ({"title": "t", "planner": "openai", "max_replans": -1}, "invalid_input", "max_replans"),
        ({"planner": "openai"}, "invalid_input", "title"),
        ({"title": "t"}, "invalid_input", "plan"),
        ({"title": "t", "plan": VALID_PLAN, "mode": "upfront"}, "invalid_input", "mode"),
        (
            {"title": "t", "plan": VALID_PLAN, "planner": "openai", "max_steps": 3},
            "invalid_input",
            "max_steps",
        ),
        (
            {"title": "t", "plan": VALID_PLAN, "max_replans": 2},
            "invalid_planner_options",
            "planner",
        ),
        (
            {"title": "t", "plan": VALID_PLAN, "planner": "manual"},
            "invalid_planner_options",
            "planner",
        ),
    ],
)
def test_bad_planner_options_are_422_naming_the_field_and_create_nothing(
    payload: dict[str, Any],
    code: str,
    field: str,
    operator: User,
    noop_tool: Tool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")  # the options are wrong, not the key
    response = api_as(operator).post("/tasks", payload)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == code, body
    assert field in {f["field"] for f in body["fields"]}, body
    assert (Task.objects.count(), Run.objects.count()) == (0, 0)


def test_only_operators_submit_planner_tasks(reviewer: User, outsider: User) -> None:
    for user, status in ((reviewer, 403), (outsider, 403), (None, 401)):
        response = api_as(user).post("/tasks", {"title": "t", "planner": "playbook"})
        assert response.status_code == status
    assert not Task.objects.exists()


def test_the_openapi_schema_documents_the_planner_options(client: Any) -> None:
    schema = client.get("/api/openapi.json").json()
    task_in = schema["components"]["schemas"]["TaskIn"]["properties"]
    assert {
        "planner",
        "model",
        "mode",
        "temperature",
        "max_tokens",
        "max_replans",
        "max_steps",
    } <= (set(task_in))
    assert "iterative" in str(task_in["mode"])


def test_a_hand_written_plan_may_name_the_planner_that_replans_it(
    operator: User, noop_tool: Tool
) -> None:
    response = api_as(operator).post(
        "/tasks", {"plan": VALID_PLAN, "planner": "playbook", "max_replans": 2}
    )
    assert response.status_code == 201, response.json()
    run = Run.objects.select_related("task").get(pk=response.json()["id"])
    assert run.status == RunStatus.QUEUED and run.current_plan is not None
    assert (run.task.planner, run.task.mode, run.task.max_replans) == ("playbook", "upfront", 2)

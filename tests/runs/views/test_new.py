"""The new-run page: the plan form, the plan check as it is typed, planner tasks and their budgets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from reviews.models import AuditEntry
from runs.models import Plan, Run, RunStatus, Task, Tool, TranscriptEvent
from tests.runs.views.conftest import VALID_PLAN, client_for, messages_of

pytestmark = pytest.mark.django_db


def test_the_new_run_form_shows_every_validation_problem_inline_and_creates_no_run(
    noop_tool: Tool, operator: User
) -> None:
    plan = {
        "steps": [
            {"id": "a", "action": "launch_rockets"},
            {"id": "a", "action": "noop"},
            {"id": "b", "action": "noop", "depends_on": ["ghost"]},
        ]
    }
    response = client_for(operator).post(
        reverse("runs:new"), {"title": "Bad plan", "plan": json.dumps(plan)}
    )
    assert response.status_code == 200
    problems = response.context["form"].plan_problems
    codes = {p["code"] for p in problems}
    assert len(problems) >= 3
    assert {"duplicate_id"} <= codes
    page = response.content.decode()
    for problem in problems:
        assert problem["path"] in page
    assert "launch_rockets" in page and "ghost" in page
    assert f"The plan has {len(problems)} problems" in page
    assert Run.objects.count() == 0


def test_an_invalid_plan_from_the_form_writes_no_task_run_plan_or_transcript_event(
    noop_tool: Tool, operator: User
) -> None:
    plan = {"steps": [{"id": "a", "action": "launch_rockets"}]}
    response = client_for(operator).post(
        reverse("runs:new"), {"title": "Bad plan", "plan": json.dumps(plan)}
    )
    assert response.status_code == 200 and "launch_rockets" in response.content.decode()
    for model in (Task, Run, Plan, TranscriptEvent):
        assert not model.objects.exists(), model.__name__


def test_a_syntax_error_is_shown_with_the_text_kept(operator: User) -> None:
    text = "steps:\n  - id: a\n    action: [unclosed\n"
    response = client_for(operator).post(reverse("runs:new"), {"title": "t", "plan": text})
    assert response.status_code == 200
    assert "invalid YAML" in response.content.decode()
    assert response.context["form"]["plan"].value() == text
    assert Run.objects.count() == 0


@pytest.mark.parametrize("value", ["0", "-1", "many", "100000"])
def test_a_bad_max_parallel_is_a_form_error(value: str, noop_tool: Tool, operator: User) -> None:
    response = client_for(operator).post(
        reverse("runs:new"), {"title": "t", "plan": json.dumps(VALID_PLAN), "max_parallel": value}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["max_parallel"]
    assert Run.objects.count() == 0


def test_a_valid_plan_creates_a_queued_run_and_redirects_to_it(
    noop_tool: Tool, operator: User
) -> None:
    response = client_for(operator).post(
        reverse("runs:new"),
        {"title": "Say hello", "plan": json.dumps(VALID_PLAN), "max_parallel": "3"},
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:detail", args=[run.pk])
    assert (run.task.title, run.status, run.max_parallel) == ("Say hello", "queued", 3)
    assert run.task.submitted_by == operator
    assert list(run.steps.filter(phase="main").values_list("key", flat=True)) == [
        "first",
        "second",
    ]


def test_an_empty_title_takes_the_plans_goal(noop_tool: Tool, operator: User) -> None:
    yaml_plan = "goal: Say hello twice\nsteps:\n  - {id: a, action: noop}\n"
    client_for(operator).post(reverse("runs:new"), {"title": "", "plan": yaml_plan})
    assert Run.objects.get().task.title == "Say hello twice"


def test_an_empty_title_without_a_goal_is_a_form_error(noop_tool: Tool, operator: User) -> None:
    response = client_for(operator).post(
        reverse("runs:new"), {"title": "", "plan": "- {action: noop}\n"}
    )
    assert response.context["form"].errors["title"]
    assert Run.objects.count() == 0


def test_the_new_run_page_offers_each_demo_plan_and_prefills_the_one_chosen(
    operator: User,
) -> None:
    client = client_for(operator)
    page = client.get(reverse("runs:new")).content.decode()
    for name in ("migration", "migration-broken", "deploy", "deploy-broken"):
        assert f"?demo={name}" in page
    chosen = client.get(reverse("runs:new"), {"demo": "deploy-broken"})
    form = chosen.context["form"]
    assert "fail: true" in form["plan"].value()
    assert form["title"].value().startswith("Release 2.5.0-rc1")
    unknown = client.get(reverse("runs:new"), {"demo": "../../etc/passwd"})
    assert unknown.status_code == 200
    assert any("no demo plan" in m for m in messages_of(unknown))


def check(client: Client, text: str) -> str:
    response = client.post(reverse("runs:check"), {"plan": text})
    assert response.status_code == 200
    return response.content.decode()


def test_the_plan_check_shows_problems_without_creating_a_run(
    noop_tool: Tool, operator: User
) -> None:
    client = client_for(operator)
    bad = check(client, json.dumps({"steps": [{"id": "a", "action": "launch_rockets"}]}))
    assert 'data-plan-check="invalid"' in bad and "launch_rockets" in bad
    assert "steps[0].action" in bad
    good = check(client, json.dumps(VALID_PLAN))
    assert 'data-plan-check="valid"' in good and "2 steps" in good
    syntax = check(client, "steps:\n  - id: a\n    action: [unclosed\n")
    assert 'data-plan-check="syntax"' in syntax and "invalid YAML" in syntax
    assert "checked as you type" in check(client, "   ")
    assert Run.objects.count() == 0


def test_the_plan_check_is_for_operators_only_and_needs_post(
    reviewer: User, outsider: User, operator: User
) -> None:
    url = reverse("runs:check")
    assert client_for(reviewer).post(url, {"plan": "steps: []"}).status_code == 403
    assert client_for(outsider).post(url, {"plan": "steps: []"}).status_code == 403
    assert Client().post(url, {"plan": "steps: []"}).status_code == 302
    assert client_for(operator).get(url).status_code == 405


def test_the_new_run_page_checks_the_plan_with_htmx_as_it_is_typed(operator: User) -> None:
    page = client_for(operator).get(reverse("runs:new")).content.decode()
    assert f'hx-post="{reverse("runs:check")}"' in page and 'id="plan-check"' in page


def task_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The task form's field names carry its prefix (it shares the page with the plan form)."""
    return {f"task-{name}": value for name, value in fields.items()}


def test_an_operator_submits_a_task_for_a_planner_with_defaults_from_settings(
    operator: User, settings: Any
) -> None:
    from runs.models import Task

    settings.PLANNERWEB_PLANNER_MAX_TOKENS = 1234
    page = client_for(operator).get(reverse("runs:new")).content.decode()
    assert 'action="/runs/new/task/"' in page and 'value="1234"' in page
    assert page.count('id="id_title"') == 1 and 'id="id_task-title"' in page
    response = client_for(operator).post(
        reverse("runs:new_task"),
        task_fields(
            {
                "title": "Back up the database",
                "planner": "playbook",
                "mode": "auto",
                "max_replans": 1,
            }
        ),
    )
    task = Task.objects.get(title="Back up the database")
    run = task.runs.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (task.planner, task.mode, task.max_replans, task.max_tokens) == (
        "playbook",
        "auto",
        1,
        1234,
    )
    assert run.status == RunStatus.QUEUED and run.current_plan is None


@pytest.mark.parametrize(
    ("fields", "bad_field", "message"),
    [
        ({"planner": "playbook", "mode": "iterative"}, "mode", "iterative mode asks a model"),
        ({"planner": "openai", "mode": "auto", "temperature": "5"}, "temperature", "2"),
        ({"planner": "nope", "mode": "auto"}, "planner", "not one of the available choices"),
        ({"planner": "openai", "mode": "sideways"}, "mode", "not one of the available choices"),
        ({"planner": "openai", "mode": "auto", "max_steps": "0"}, "max_steps", "1"),
    ],
)
def test_bad_planner_options_are_shown_inline_and_create_nothing(
    operator: User,
    fields: dict[str, str],
    bad_field: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")  # the options are wrong, not the key
    from runs.models import Task

    response = client_for(operator).post(
        reverse("runs:new_task"), task_fields({"title": "t", **fields})
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-field-errors="{bad_field}"' in page
    assert message in response.context["task_form"].errors[bad_field][0]
    assert not Task.objects.exists()


def test_only_operators_may_submit_planner_tasks(reviewer: User, outsider: User) -> None:
    from runs.models import Task

    for user in (reviewer, outsider):
        response = client_for(user).post(
            reverse("runs:new_task"),
            task_fields({"title": "t", "planner": "playbook", "mode": "auto"}),
        )
        assert response.status_code == 403
    assert client_for(None).post(reverse("runs:new_task"), {"title": "t"}).status_code == 302
    assert not Task.objects.exists()


def test_the_new_run_page_takes_budgets_for_a_planner_task(operator: User) -> None:
    client = Client()
    client.force_login(operator)
    response = client.post(
        "/runs/new/task/",
        {
            "task-title": "Deploy v2",
            "task-planner": "playbook",
            "task-mode": "auto",
            "task-budget_max_wall_seconds": "600",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    task = Task.objects.get(title="Deploy v2")
    assert task.budget_max_wall_seconds == 600
    assert AuditEntry.objects.filter(object_type="task_budgets", object_id=str(task.pk)).exists()


def test_the_new_run_page_shows_a_bad_budget_next_to_its_field(operator: User) -> None:
    client = Client()
    client.force_login(operator)
    response = client.post(
        "/runs/new/task/",
        {
            "task-title": "x",
            "task-planner": "playbook",
            "task-mode": "auto",
            "task-budget_max_steps": "0",
        },
    )
    assert response.status_code == 200
    assert 'data-field-errors="budget_max_steps"' in response.content.decode()
    assert not Task.objects.exists()


def test_a_hand_written_plan_may_name_its_replanner_on_the_page(
    noop_tool: Tool, operator: User
) -> None:
    client = client_for(operator)
    page = client.get(reverse("runs:new") + "?demo=tests-fallback").content.decode()
    assert '<option value="playbook" selected>' in page  # a demo that replans offline
    response = client.post(
        reverse("runs:new"),
        {"plan": json.dumps(VALID_PLAN), "replanner": "playbook", "max_replans": "2"},
    )
    assert response.status_code == 302
    task = Task.objects.get()
    assert (task.planner, task.max_replans) == ("playbook", 2)
    response = client.post(
        reverse("runs:new"), {"plan": json.dumps(VALID_PLAN), "max_replans": "1"}
    )
    assert response.status_code == 200
    assert "Choose the planner that replans first." in response.content.decode()
    assert Task.objects.count() == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps:\n- {id: a, action: noop, params: {n: " + "9" * 5000 + "}}",
            "more than 100 digits",
        ),
        ("a: " + "[" * 1500 + "]" * 1500, "nested more than 100 levels"),
        ('goal: "\\0"\nsteps: []', "NUL"),
        ('{"goal": "x", "steps": [{"id": "a", "action": "noop", "params": {"n": NaN}}]}', "NaN"),
    ],
    ids=["huge-int", "deep", "nul", "nan"],
)
def test_plan_text_beyond_the_limits_is_a_form_error_not_a_500(
    text: str, message: str, operator: User, noop_tool: Tool
) -> None:
    response = client_for(operator).post(reverse("runs:new"), {"title": "t", "plan": text})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Run.objects.count() == 0

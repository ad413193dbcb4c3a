"""Per-task budgets given to POST /api/tasks: stored on the task, audited, checked (422 per field)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import AuditEntry
from runs.execution.budgets import budgets_for
from runs.models import Run, Task
from tests.runs.api.conftest import VALID_PLAN, api_as

pytestmark = pytest.mark.django_db


def test_budgets_given_with_a_plan_are_stored_and_audited_with_the_submitter(
    operator: User, noop_tool: Any
) -> None:
    response = api_as(operator).post(
        "/tasks",
        {"plan": VALID_PLAN, "budget_max_steps": 3, "budget_max_cost": "0.25"},
    )
    assert response.status_code == 201, response.json()
    task = Run.objects.select_related("task").get(pk=response.json()["id"]).task
    assert (task.budget_max_steps, task.budget_max_cost) == (3, Decimal("0.25"))
    assert task.budget_max_tokens is None  # not given: the deployment's default applies
    assert budgets_for(task).max_steps == 3
    entry = AuditEntry.objects.get(object_type="task_budgets", object_id=str(task.pk))
    assert entry.actor_name == operator.username
    assert entry.after == {"budget_max_steps": "3", "budget_max_cost": "0.25"}


def test_a_task_without_budgets_writes_no_audit_entry(operator: User, noop_tool: Any) -> None:
    assert api_as(operator).post("/tasks", {"plan": VALID_PLAN}).status_code == 201
    assert not AuditEntry.objects.filter(object_type="task_budgets").exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("budget_max_steps", 0),
        ("budget_max_tokens", -5),
        ("budget_max_cost", "-1"),
        ("budget_max_wall_seconds", "soon"),
    ],
)
def test_a_bad_budget_is_422_naming_it_and_creates_nothing(
    operator: User, noop_tool: Any, field: str, value: Any
) -> None:
    response = api_as(operator).post("/tasks", {"plan": VALID_PLAN, field: value})
    assert response.status_code == 422
    assert field in str(response.json()["fields"])
    assert not Task.objects.exists()

"""A task's own retention, chosen at submission within the deployment's bounds."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.models import Run, Task, Tool
from tests.runs.api.conftest import VALID_PLAN, api_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def bounds(settings: Any) -> Any:
    settings.PLANNERWEB_RETAIN_RUNS_MIN_DAYS = 7
    settings.PLANNERWEB_RETAIN_RUNS_MAX_DAYS = 90
    return settings


def test_a_plan_submitted_with_its_own_retention_keeps_it(
    operator: User, noop_tool: Tool, bounds: Any
) -> None:
    response = api_as(operator).post("/tasks", {"plan": VALID_PLAN, "retain_days": 30})

    assert response.status_code == 201, response.json()
    assert Run.objects.get(pk=response.json()["id"]).task.retain_days == 30


def test_a_task_for_a_planner_takes_its_retention_too(operator: User, bounds: Any) -> None:
    response = api_as(operator).post(
        "/tasks", {"title": "Plan it", "planner": "playbook", "retain_days": 7}
    )

    assert response.status_code == 201, response.json()
    assert Run.objects.get(pk=response.json()["id"]).task.retain_days == 7


@pytest.mark.parametrize("days", [3, 365])
def test_a_retention_outside_the_bounds_is_a_422_and_creates_nothing(
    operator: User, noop_tool: Tool, bounds: Any, days: int
) -> None:
    response = api_as(operator).post("/tasks", {"plan": VALID_PLAN, "retain_days": days})

    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "retain_days"
    assert "between 7 and 90" in response.json()["detail"]
    assert not Task.objects.exists()

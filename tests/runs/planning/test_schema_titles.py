"""A task without a title takes its plan's goal, cut the same way through every way in."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from runs.models import Task, Tool
from tests.runs.api.conftest import VALID_PLAN, api_as

pytestmark = pytest.mark.django_db

GOAL = "  " + "Say hello, " * 30 + "  "  # padded and longer than a title may be
TITLE = GOAL.strip()[:200]
PLAN = {**VALID_PLAN, "goal": GOAL}


@pytest.fixture
def noop_tool(db: None) -> Tool:
    return Tool.objects.create(
        name="noop", kind="python", config={"callable": "runs.tools.builtin.noop"}
    )


def by_form(operator: User, tmp_path: Path) -> None:
    client = Client()
    client.force_login(operator)
    response = client.post(
        reverse("runs:new"), {"title": "", "plan": json.dumps(PLAN), "max_parallel": 2}
    )
    assert response.status_code == 302, response.content[:2000]


def by_api(operator: User, tmp_path: Path) -> None:
    assert api_as(operator).post("/tasks", {"plan": PLAN}).status_code == 201


def by_command(operator: User, tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(PLAN))
    call_command("run_plan", str(path), stdout=StringIO())


@pytest.mark.parametrize("submit", [by_form, by_api, by_command], ids=["form", "api", "command"])
def test_a_plans_goal_becomes_the_title_stripped_and_cut_to_a_titles_length(
    submit: object, noop_tool: Tool, operator: User, tmp_path: Path
) -> None:
    submit(operator, tmp_path)  # type: ignore[operator]
    assert Task.objects.get().title == TITLE

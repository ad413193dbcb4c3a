"""The new-run page's options: each once, model options for model planners, unavailable
planners with what to set, the plan confirmation choice and the retention choice."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from runs.models import Task, Tool
from tests.runs.views.conftest import VALID_PLAN, client_for

pytestmark = pytest.mark.django_db


def _labels(html: str) -> list[str]:
    return [
        re.sub(r"<[^>]+>", "", m).strip()
        for m in re.findall(r"<label[^>]*>(.*?)</label>", html, re.S)
    ]


def _form(page: str, marker: str) -> str:
    start = page.index(marker)
    return page[start : page.index("</form>", start)]


def test_each_option_appears_once_in_each_form(operator: User) -> None:
    page = client_for(operator).get(reverse("runs:new")).content.decode()
    for marker in ('action="/runs/new/"', "data-task-form"):
        labels = _labels(_form(page, marker))
        twice = [label for label, n in Counter(labels).items() if n > 1]
        assert twice == [], (marker, labels)
    task = _labels(_form(page, "data-task-form"))
    assert {"Tokens per model call", "Steps (iterative mode)", "Max tokens", "Max steps"} <= set(
        task
    )


@pytest.mark.usefixtures("no_openai_key")
def test_a_planner_without_its_key_is_offered_as_unavailable_and_refused_with_422(
    operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    client = client_for(operator)
    page = client.get(reverse("runs:new")).content.decode()
    assert 'data-unavailable="set OPENAI_API_KEY (or OPENAI_API_KEY_FILE)' in page
    assert "openai (unavailable)" in page
    assert 'data-unavailable-planner="anthropic"' not in page
    response = client.post(
        reverse("runs:new_task"),
        {"task-title": "t", "task-planner": "openai", "task-mode": "auto"},
    )
    assert response.status_code == 422
    assert "set OPENAI_API_KEY" in response.content.decode()
    assert not Task.objects.exists()


def test_model_options_are_not_taken_for_the_playbook_planner(operator: User) -> None:
    response = client_for(operator).post(
        reverse("runs:new_task"),
        {
            "task-title": "t",
            "task-planner": "playbook",
            "task-mode": "auto",
            "task-model": "gpt-4.1",
            "task-temperature": "1.5",
        },
    )
    assert response.status_code == 302
    task = Task.objects.get()
    assert (task.planner, task.model, task.temperature) == ("playbook", "", 0.2)


def test_the_confirmation_choice_is_stored_with_the_task(operator: User, settings: Any) -> None:
    settings.PLANNERWEB_CONFIRM_PLANS = "always"
    client = client_for(operator)
    page = client.get(reverse("runs:new")).content.decode()
    assert "default (always)" in page
    fields = {"task-title": "t", "task-planner": "playbook", "task-mode": "auto"}
    client.post(reverse("runs:new_task"), fields)
    client.post(reverse("runs:new_task"), {**fields, "task-confirm_plan": "never"})
    assert sorted(Task.objects.values_list("confirm_plan", flat=True)) == ["always", "never"]
    bad = client.post(reverse("runs:new_task"), {**fields, "task-confirm_plan": "maybe"})
    assert 'data-field-errors="confirm_plan"' in bad.content.decode()
    assert Task.objects.count() == 2


def test_the_retention_choice_is_kept_within_bounds_and_refused_beyond_them(
    operator: User, settings: Any, noop_tool: Tool
) -> None:
    settings.PLANNERWEB_RETAIN_RUNS_MIN_DAYS, settings.PLANNERWEB_RETAIN_RUNS_MAX_DAYS = 7, 90
    client = client_for(operator)
    page = client.get(reverse("runs:new")).content.decode()
    assert 'min="7"' in page and 'max="90"' in page and "From 7 to 90 days" in page
    task = {"task-title": "t", "task-planner": "playbook", "task-mode": "auto"}
    assert (
        client.post(reverse("runs:new_task"), {**task, "task-retain_days": "30"}).status_code == 302
    )
    plan = {"title": "p", "plan": json.dumps(VALID_PLAN), "retain_days": "8"}
    assert client.post(reverse("runs:new"), plan).status_code == 302
    assert sorted(Task.objects.values_list("retain_days", flat=True)) == [8, 30]
    for url, fields, name in (
        (reverse("runs:new_task"), {**task, "task-retain_days": "365"}, "retain_days"),
        (reverse("runs:new"), {**plan, "retain_days": "3"}, "retain_days"),
    ):
        response = client.post(url, fields)
        body = response.content.decode()
        assert f'data-field-errors="{name}"' in body
        assert "retention must be between 7 and 90 days" in body
    assert Task.objects.count() == 2

"""POST /api/runs/{id}/resume: only the actions the escalation allows now; else 409 with the list."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import ReviewItem
from runs.models import Run, RunStatus, Task
from tests.reviews.conftest import all_ticks
from tests.runs.api.conftest import api_as
from tests.runs.lifecycle.test_escalations_actions import over_budget, unmatched

pytestmark = pytest.mark.django_db(transaction=True)

SCENARIOS: dict[str, tuple[Callable[..., Run], list[str]]] = {
    "budget_breached": (
        lambda key, op: over_budget(key),
        ["raise_budget", "edit", "rollback", "abort"],
    ),
    "budget_breached_rolled_back": (lambda key, op: over_budget(key, rollback=True), ["abort"]),
    "no_playbook_match": (lambda key, op: unmatched(op), ["write_plan", "abort"]),
}
ACTIONS = ["retry", "skip", "edit", "write_plan", "raise_budget", "rollback"]


def ticks(run: Run) -> list[int]:
    return all_ticks(ReviewItem.objects.get(run=run, status="open"))


def body_for(action: str) -> dict[str, Any]:
    body: dict[str, Any] = {"action": action, "checklist": [0, 1, 2], "reason": "why"}
    if action in ("edit", "write_plan"):
        body["plan"] = {
            "steps": [{"id": "x", "action": "record", "params": {"key": "k", "label": "x"}}]
        }
    if action == "raise_budget":
        body["budget_max_steps"] = 10
    return body


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("action", ACTIONS)
def test_an_action_the_escalation_does_not_offer_is_409_with_the_allowed_list(
    fast_settings: Any,
    toolset: None,
    reviewer: User,
    operator: User,
    key: str,
    scenario: str,
    action: str,
) -> None:
    build, allowed = SCENARIOS[scenario]
    run = build(key, operator)
    item = ReviewItem.objects.get(run=run, status="open")
    client = api_as(reviewer)
    assert client.get(f"/reviews/{item.pk}").json()["allowed_actions"] == allowed
    if action in allowed:
        return  # the allowed ones are exercised below and in the lifecycle tests
    response = client.post(f"/runs/{run.pk}/resume", body_for(action))
    assert response.status_code == 409, response.json()
    body = response.json()
    assert (body["code"], body["allowed"]) == ("action_not_allowed", allowed)
    assert action in body["detail"]
    assert ReviewItem.objects.get(pk=item.pk).status == "open"  # nothing written
    assert Run.objects.get(pk=run.pk).status == RunStatus.ESCALATED


def test_raise_budget_through_the_api_resumes_the_run(
    fast_settings: Any, toolset: None, reviewer: User, key: str
) -> None:
    run = over_budget(key)
    response = api_as(reviewer).post(
        f"/runs/{run.pk}/resume",
        {"action": "raise_budget", "budget_max_steps": 10, "checklist": ticks(run)},
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == RunStatus.QUEUED
    assert Task.objects.get(pk=run.task_id).budget_max_steps == 10


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "raise_budget", "budget_max_steps": 2}, "budget_max_steps"),
        ({"action": "raise_budget"}, "budgets"),
        ({"action": "raise_budget", "budget_max_steps": 0}, "budget_max_steps"),
        ({"action": "abort", "reason": "x", "budget_max_steps": 9}, "budgets"),
    ],
)
def test_bad_budgets_are_422_naming_the_field_and_write_nothing(
    fast_settings: Any, toolset: None, reviewer: User, key: str, body: dict[str, Any], field: str
) -> None:
    run = over_budget(key)
    response = api_as(reviewer).post(f"/runs/{run.pk}/resume", {**body, "checklist": ticks(run)})
    assert response.status_code == 422, response.json()
    assert field in {f["field"] for f in response.json()["fields"]}
    assert Task.objects.get(pk=run.task_id).budget_max_steps == 2
    assert Run.objects.get(pk=run.pk).status == RunStatus.ESCALATED

"""POST /api/runs/{id}/confirm and /discard: the submitter's decision on a planner's plan."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import ReviewItem, ReviewKind, ReviewStatus
from runs.lifecycle.planning import run_plan
from runs.models import Run, RunStatus, Task
from tests.runs.api.conftest import api_as
from tests.runs.planning.conftest import good_plan, planner_settings, planner_tools
from tests.runs.planning.test_planner import scripted

__all__ = ["planner_settings", "planner_tools"]
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def waiting(monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any) -> Run:
    """A run submitted through the API whose plan (confidence 0.38) waits for confirmation."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    scripted(monkeypatch, "openai", good_plan(confidence=0.38))
    body = api_as(operator).post("/tasks", {"title": "record two labels", "planner": "openai"})
    assert body.status_code == 201, body.json()
    assert run_plan(run_id=body.json()["id"]) == RunStatus.AWAITING_APPROVAL
    return Run.objects.get(pk=body.json()["id"])


def test_the_submitter_confirms_and_the_run_is_queued(waiting: Run, operator: User) -> None:
    response = api_as(operator).post(
        f"/runs/{waiting.pk}/confirm", {"plan_version": 1, "reason": "fine"}
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == RunStatus.QUEUED
    item = ReviewItem.objects.get(run=waiting, kind=ReviewKind.CONFIRMATION)
    assert (item.status, item.reason) == (ReviewStatus.APPROVED, "fine")


def test_an_edited_plan_is_confirmed_as_a_new_version(waiting: Run, operator: User) -> None:
    edited = good_plan("other", confidence=0.9)
    response = api_as(operator).post(f"/runs/{waiting.pk}/confirm", {"plan": edited})
    assert response.status_code == 200, response.json()
    assert response.json()["plan_version"] == 2


def test_the_submitter_discards_and_the_run_is_cancelled(waiting: Run, operator: User) -> None:
    response = api_as(operator).post(f"/runs/{waiting.pk}/discard", {"reason": "not now"})
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == RunStatus.CANCELLED


def test_another_operator_may_decide_but_a_reviewer_or_outsider_may_not(
    waiting: Run, reviewer: User, outsider: User, admin_user: User
) -> None:
    for user, status in ((reviewer, 403), (outsider, 403), (None, 401)):
        for action in ("confirm", "discard"):
            response = api_as(user).post(f"/runs/{waiting.pk}/{action}", {})
            assert response.status_code == status, (user, action, response.content)
    waiting.refresh_from_db()
    assert waiting.status == RunStatus.AWAITING_APPROVAL
    assert api_as(admin_user).post(f"/runs/{waiting.pk}/confirm", {}).status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"plan_version": 7}, 409, "stale_plan"),
        ({"plan_version": 0}, 422, "invalid_input"),
        ({"plan": "steps: [unclosed"}, 422, "invalid_input"),
        ({"plan": {"goal": "x", "steps": [{"id": "a", "action": "nope"}]}}, 422, None),
        ({"reason": "x" * 2001}, 422, "invalid_input"),
        ({"unknown": 1}, 422, "invalid_input"),
    ],
    ids=["stale", "zero-version", "syntax", "invalid-plan", "long-reason", "unknown-field"],
)
def test_bad_input_is_a_4xx_and_leaves_the_run_waiting(
    waiting: Run, operator: User, body: dict[str, Any], status: int, code: str | None
) -> None:
    response = api_as(operator).post(f"/runs/{waiting.pk}/confirm", body)
    assert response.status_code == status, response.content
    if code is not None:
        assert response.json()["code"] == code
    waiting.refresh_from_db()
    assert waiting.status == RunStatus.AWAITING_APPROVAL and waiting.plans.count() == 1


def test_nothing_waiting_is_a_409_and_an_unknown_run_a_404(waiting: Run, operator: User) -> None:
    client = api_as(operator)
    assert client.post(f"/runs/{waiting.pk}/discard", {}).status_code == 200
    again = client.post(f"/runs/{waiting.pk}/confirm", {})
    assert again.status_code == 409 and again.json()["code"] == "nothing_to_confirm"
    assert client.post("/runs/999999/confirm", {}).status_code == 404


def test_the_choice_is_taken_at_submission_and_refused_with_a_plan(
    operator: User, planner_tools: Any
) -> None:
    client = api_as(operator)
    made = client.post("/tasks", {"title": "t", "planner": "playbook", "confirm_plan": "always"})
    assert made.status_code == 201
    assert Task.objects.get().confirm_plan == "always"
    bad = client.post("/tasks", {"title": "t", "planner": "playbook", "confirm_plan": "maybe"})
    assert bad.status_code == 422
    with_plan = client.post("/tasks", {"title": "t", "plan": good_plan(), "confirm_plan": "never"})
    assert with_plan.status_code == 422
    assert with_plan.json()["fields"][0]["field"] == "confirm_plan"
    assert Task.objects.count() == 1


@pytest.mark.usefixtures("no_openai_key")
def test_a_planner_without_its_key_is_refused_naming_what_to_set(operator: User) -> None:
    response = api_as(operator).post("/tasks", {"title": "t", "planner": "openai"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "planner_unavailable" and "OPENAI_API_KEY" in body["detail"]
    assert not Task.objects.exists()


def test_a_retention_choice_within_bounds_is_kept_and_beyond_them_refused(
    operator: User, settings: Any
) -> None:
    settings.PLANNERWEB_RETAIN_RUNS_MIN_DAYS, settings.PLANNERWEB_RETAIN_RUNS_MAX_DAYS = 7, 90
    client = api_as(operator)
    ok = client.post("/tasks", {"title": "t", "planner": "playbook", "retain_days": 30})
    assert ok.status_code == 201 and Task.objects.get().retain_days == 30
    beyond = client.post("/tasks", {"title": "t", "planner": "playbook", "retain_days": 365})
    assert beyond.status_code == 422
    assert "between 7 and 90 days" in beyond.json()["detail"]
    assert Task.objects.count() == 1

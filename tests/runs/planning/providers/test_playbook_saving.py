"""Which runs the playbook planner reuses: saved on purpose, or succeeded under approval."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from reviews.models import ApprovalPolicy, ReviewItem
from runs.lifecycle.claim import run_execute
from runs.lifecycle.reviews import review_approve
from runs.lifecycle.submit import run_submit_plan
from runs.models import Playbook, Run, Tool, TranscriptEvent
from runs.planning.providers.playbook import load_cases
from tests.runs.api.conftest import api_as

pytestmark = pytest.mark.django_db(transaction=True)

PLAN = {
    "goal": "Say hello",
    "steps": [{"id": "hello", "action": "noop", "description": "say it"}],
}


@pytest.fixture
def noop(db: None) -> Tool:
    return Tool.objects.create(
        name="noop",
        kind="python",
        config={"callable": "runs.tools.builtin.noop"},
        parameters_schema={"type": "object"},
        description="Return at once.",
    )


@pytest.fixture
def succeeded(noop: Tool, operator: User) -> Run:
    run = run_submit_plan(title="Say hello to the team", document=PLAN, submitted_by=operator)
    assert run_execute(run_id=run.pk) == "succeeded"
    return run


def test_a_run_that_merely_succeeded_is_not_reused(succeeded: Run) -> None:
    assert [c.name for c in load_cases()] == []


def test_a_run_that_succeeded_after_a_reviewer_approved_its_plan_is_reused(
    noop: Tool, operator: User, reviewer: User
) -> None:
    ApprovalPolicy.objects.create(mode="always", confidence_threshold=0.6)
    run = run_submit_plan(title="Say hello", document=PLAN, submitted_by=operator)
    assert run.status == "awaiting_approval"
    item = ReviewItem.objects.get(run=run)
    review_approve(item_id=item.pk, user=reviewer, checklist=list(range(len(item.checklist))))
    assert run_execute(run_id=run.pk) == "succeeded"
    assert [c.name for c in load_cases()] == [f"run:{run.pk}"]


def test_a_reviewer_saves_a_succeeded_run_as_a_playbook_through_the_api(
    succeeded: Run, reviewer: User
) -> None:
    response = api_as(reviewer).post("/playbooks", {"run": succeeded.pk, "name": "say-hello"})
    assert response.status_code == 201, response.content
    assert response.json() == {
        "name": "say-hello",
        "task_text": "Say hello to the team",
        "source_run": succeeded.pk,
        "uses": 0,
        "steps": 1,
    }
    assert [c.name for c in load_cases()] == ["playbook:say-hello"]
    event = TranscriptEvent.objects.get(run=succeeded, kind="playbook.saved")
    assert event.payload == {"name": "say-hello", "by": reviewer.username}
    assert event.role == "reviewer"
    listed = api_as(reviewer).get("/playbooks").json()
    assert [p["name"] for p in listed] == ["say-hello"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"run": 999999, "name": "x"}, 404, "not_found"),
        ({"run": 0, "name": "x"}, 422, "invalid_input"),
        ({"name": "Bad Name"}, 422, "invalid_input"),
        ({"name": ""}, 422, "invalid_input"),
        ({"name": "ok", "task_text": "a\u0000b"}, 422, "invalid_input"),
        ({"name": "ok", "extra": 1}, 422, "invalid_input"),
    ],
)
def test_bad_saves_are_refused_and_write_nothing(
    succeeded: Run, operator: User, body: dict[str, Any], status: int, code: str
) -> None:
    body = {"run": succeeded.pk, **body}
    response = api_as(operator).post("/playbooks", body)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert not Playbook.objects.exists()
    assert not TranscriptEvent.objects.filter(kind="playbook.saved").exists()


def test_a_taken_name_and_an_unfinished_run_are_refused(
    succeeded: Run, noop: Tool, operator: User
) -> None:
    api = api_as(operator)
    assert api.post("/playbooks", {"run": succeeded.pk, "name": "hello"}).status_code == 201
    again = api.post("/playbooks", {"run": succeeded.pk, "name": "hello"})
    assert again.status_code == 422
    assert "exists already" in again.json()["detail"]
    queued = run_submit_plan(title="later", document=PLAN, submitted_by=operator)
    refused = api.post("/playbooks", {"run": queued.pk, "name": "later"})
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"Run {queued.pk} is queued: only a succeeded run's plan is a playbook."
    )
    assert Playbook.objects.count() == 1


def test_users_with_no_role_cannot_list_or_save(succeeded: Run, outsider: User) -> None:
    api = api_as(outsider)
    assert api.get("/playbooks").status_code == 403
    assert api.post("/playbooks", {"run": succeeded.pk, "name": "x"}).status_code == 403
    assert not Playbook.objects.exists()


def test_the_run_page_offers_the_form_and_saves(succeeded: Run, operator: User) -> None:
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("runs:detail", args=[succeeded.pk])).content.decode()
    assert "data-playbook-form" in page
    url = reverse("runs:save_playbook", args=[succeeded.pk])
    response = client.post(url, {"name": "hello-team"}, follow=True)
    assert "Saved as playbook hello-team" in response.content.decode()
    assert Playbook.objects.get().source_run_id == succeeded.pk
    refused = client.post(url, {"name": "Not A Slug"}, follow=True).content.decode()
    assert "A playbook name is 1-100 lowercase letters" in refused
    assert Playbook.objects.count() == 1


def test_the_form_is_not_offered_before_the_run_succeeded(noop: Tool, operator: User) -> None:
    run = run_submit_plan(title="later", document=PLAN, submitted_by=operator)
    client = Client()
    client.force_login(operator)
    page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "data-playbook-form" not in page

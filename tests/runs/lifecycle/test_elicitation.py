"""A tool's question as a review item: its form on the pages, the SLA, redaction (no MCP server here)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from reviews.models import ReviewItem, ReviewKindSettings, ReviewStatus, TimeoutAction
from runs.lifecycle import elicitation
from runs.lifecycle.reviews import review_expire_overdue
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Step, Tool, TranscriptEvent
from runs.tools.asking import Answer, Question

pytestmark = pytest.mark.django_db(transaction=True)

SCHEMA = {
    "type": "object",
    "properties": {
        "table": {"type": "string", "title": "Table", "enum": ["users", "orders"]},
        "rows": {"type": "integer", "description": "How many"},
        "dry": {"type": "boolean"},
        "note": {"type": "string"},
    },
    "required": ["table", "rows"],
}


@pytest.fixture
def asked(make_tool: Callable[..., Tool], operator: User) -> tuple[Run, ReviewItem]:
    make_tool("record", "record")
    run = run_submit_plan(
        title="copy",
        document={"goal": "copy", "steps": [{"id": "copy", "tool": "record", "params": {}}]},
        submitted_by=operator,
    )
    step = Step.objects.get(run=run, key="copy")
    question = Question(server="db", tool="copy_rows", message="Which rows?", schema=SCHEMA)
    item_id = elicitation.elicitation_open(
        run_id=run.pk, step_id=step.pk, step="copy", question=question
    )
    return run, ReviewItem.objects.get(pk=item_id)


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_submitter_answers_with_the_form_on_the_run_page(
    asked: tuple[Run, ReviewItem], operator: User
) -> None:
    run, item = asked
    Run.objects.filter(pk=run.pk).update(status="executing")
    client = logged_in(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Which rows?" in page and 'name="rows"' in page and "data-elicitation-form" in page

    posted = {"action": "accept", "table": "users", "rows": "5", "dry": "true", "note": ""}
    response = client.post(f"/runs/{run.pk}/elicitations/{item.pk}/", posted)

    assert response.status_code == 302
    item.refresh_from_db()
    assert (item.status, item.decided_by) == (ReviewStatus.APPROVED, operator)
    assert item.context["answer"] == {
        "action": "accept",
        "content": {"table": "users", "rows": 5, "dry": True},
    }
    assert elicitation.elicitation_outcome(item.pk) == Answer(
        "accept", {"table": "users", "rows": 5, "dry": True}
    )


def test_a_value_of_the_wrong_type_leaves_the_question_open(
    asked: tuple[Run, ReviewItem], operator: User
) -> None:
    run, item = asked
    client = logged_in(operator)
    posted = {"action": "accept", "table": "users", "rows": "five"}
    response = client.post(f"/runs/{run.pk}/elicitations/{item.pk}/", posted, follow=True)
    assert "rows: &#x27;five&#x27; is not a whole number" in response.content.decode()
    item.refresh_from_db()
    assert item.status == ReviewStatus.OPEN
    assert elicitation.elicitation_outcome(item.pk) is None


def test_the_review_item_page_shows_the_message_and_the_schema_to_a_reviewer(
    asked: tuple[Run, ReviewItem], reviewer: User, outsider: User
) -> None:
    _, item = asked
    page = logged_in(reviewer).get(f"/reviews/{item.pk}/").content.decode()
    assert "Which rows?" in page
    assert '<option value="orders">orders</option>' in page
    assert "&quot;required&quot;" in page  # the requested schema, as JSON
    assert "data-decision-form" not in page  # answered, not approved
    assert (
        logged_in(outsider)
        .post(f"/runs/{item.run_id}/elicitations/{item.pk}/", {"action": "decline"})
        .status_code
        == 403
    )
    item.refresh_from_db()
    assert item.status == ReviewStatus.OPEN


def test_the_sla_with_auto_reject_declines_the_question_without_stopping_the_run(
    asked: tuple[Run, ReviewItem],
) -> None:
    run, item = asked
    ReviewKindSettings.objects.update_or_create(
        kind="elicitation",
        defaults={"sla_minutes": 1, "timeout_action": TimeoutAction.AUTO_REJECT},
    )
    ReviewItem.objects.filter(pk=item.pk).update(due_at=timezone.now() - timedelta(minutes=1))

    assert review_expire_overdue() == [item.pk]

    assert elicitation.elicitation_outcome(item.pk) == Answer("decline")
    run.refresh_from_db()
    assert run.status == "queued"  # the waiting call decides what a decline means
    declined = TranscriptEvent.objects.get(run=run, kind="elicitation.answered").payload
    assert declined["action"] == "decline"


def test_an_answer_is_stored_and_recorded_redacted(
    asked: tuple[Run, ReviewItem], operator: User
) -> None:
    run, item = asked
    secret = "sk-" + "a1B2" * 8
    elicitation.elicitation_answer(
        run_id=run.pk,
        item_id=item.pk,
        user=operator,
        action="accept",
        content={"table": "users", "rows": 1, "note": f"key {secret}"},
    )
    item.refresh_from_db()
    recorded: Any = TranscriptEvent.objects.get(run=run, kind="elicitation.answered").payload
    assert secret not in str(item.context) and secret not in str(recorded)
    assert recorded["content"]["rows"] == 1

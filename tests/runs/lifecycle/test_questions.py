"""Clarifying questions: the planner asks, the run waits, the answer comes back to it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from reviews.models import AuditEntry, ReviewItem, ReviewKindSettings, TimeoutAction
from runs.lifecycle.claim import run_execute
from runs.lifecycle.errors import RunError
from runs.lifecycle.planning import run_plan, run_submit_task
from runs.lifecycle.questions import NotYours, run_answer
from runs.lifecycle.reviews import review_expire_overdue
from runs.models import Playbook, Run, RunStatus, TranscriptEvent
from runs.planning.questions import ASK_RULE
from runs.tokens import api_token_create
from tests.runs.api.conftest import ApiClient
from tests.runs.planning.conftest import good_plan
from tests.runs.planning.test_planner import scripted

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = {
    "ask": "Which environment: staging or production?",
    "options": ["staging", "production"],
}


def _asked(monkeypatch: pytest.MonkeyPatch, operator: User, *script: Any) -> tuple[Run, Any]:
    model = scripted(monkeypatch, "openai", QUESTION, *script)
    run = run_submit_task(title="deploy the release", submitted_by=operator, planner="openai")
    assert run_plan(run_id=run.pk) == RunStatus.AWAITING_INPUT
    run.refresh_from_db()
    return run, model


def test_a_question_parks_the_run_and_the_answer_sends_it_back_to_the_planner(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    run, model = _asked(monkeypatch, operator, good_plan())

    assert run.status == RunStatus.AWAITING_INPUT and not run.lease_owner
    item = ReviewItem.objects.get(run=run, kind="clarification", status="open")
    assert item.context == {"question": QUESTION["ask"], "options": ["staging", "production"]}
    assert "ask" in model.requests[0].schema["properties"]
    assert ASK_RULE in model.requests[0].system
    asked = TranscriptEvent.objects.get(run=run, kind="question.asked").payload
    assert (asked["number"], asked["item_id"]) == (1, item.pk)

    run_answer(run_id=run.pk, user=operator, answer="staging")

    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    item.refresh_from_db()
    assert (item.status, item.decision, item.context["answer"]) == (
        "approved",
        "answered",
        "staging",
    )
    assert (
        TranscriptEvent.objects.get(run=run, kind="question.answered").payload["answer"]
        == "staging"
    )
    assert AuditEntry.objects.filter(run_id=run.pk, action="review.answered").exists()
    status = run_plan(run_id=run.pk)
    run.refresh_from_db()
    assert status == RunStatus.EXECUTING, (run.stop_reason, model.requests[-1].messages)
    told = model.requests[1].messages[0]["content"]
    assert f"Q: {QUESTION['ask']}" in told and "A: staging" in told


def test_past_the_limit_the_planner_is_not_offered_a_question(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    planner_settings.PLANNERWEB_MAX_QUESTIONS = 1
    # Asked again anyway: that is no plan, so the repair rounds run out and the run escalates.
    run, model = _asked(monkeypatch, operator, QUESTION, QUESTION, QUESTION)
    run_answer(run_id=run.pk, user=operator, answer="production")

    assert run_plan(run_id=run.pk) == RunStatus.ESCALATED
    assert "ask" not in model.requests[1].schema["properties"]
    assert ASK_RULE not in model.requests[1].system
    assert ReviewItem.objects.filter(run=run, kind="clarification").count() == 1


def test_an_unanswered_question_follows_its_kinds_timeout_action(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    ReviewKindSettings.objects.create(
        kind="clarification", sla_minutes=30, timeout_action=TimeoutAction.AUTO_ABORT
    )
    run, _ = _asked(monkeypatch, operator)

    assert review_expire_overdue(now=timezone.now() + timedelta(minutes=10)) == []
    expired = review_expire_overdue(now=timezone.now() + timedelta(minutes=31))

    assert expired == [ReviewItem.objects.get(run=run).pk]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    with pytest.raises(RunError, match="no question waiting"):
        run_answer(run_id=run.pk, user=operator, answer="staging")


def test_only_the_submitter_or_a_reviewer_answers_and_an_answer_is_not_empty(
    planner_tools: Any,
    planner_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    operator: User,
    reviewer: User,
) -> None:
    run, _ = _asked(monkeypatch, operator)
    other = User.objects.create_user("otto")
    other.groups.add(*operator.groups.all())

    with pytest.raises(NotYours):
        run_answer(run_id=run.pk, user=other, answer="staging")
    with pytest.raises(RunError, match="1 to 2000"):
        run_answer(run_id=run.pk, user=operator, answer="   ")
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_INPUT
    run_answer(run_id=run.pk, user=reviewer, answer="production")
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_the_api_answers_with_the_run_and_refuses_what_it_must(
    planner_tools: Any,
    planner_settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    operator: User,
    outsider: User,
) -> None:
    run, _ = _asked(monkeypatch, operator)
    api = ApiClient(api_token_create(user=operator, name="t").plaintext)
    stranger = ApiClient(api_token_create(user=outsider, name="t").plaintext)

    assert stranger.post(f"/runs/{run.pk}/answer", {"answer": "x"}).status_code == 403
    assert api.post(f"/runs/{run.pk}/answer", {"answer": ""}).status_code == 422
    assert api.post("/runs/999999/answer", {"answer": "x"}).status_code == 404
    answered = api.post(f"/runs/{run.pk}/answer", {"answer": "staging"})
    assert answered.status_code == 200, answered.json()
    assert answered.json()["status"] == "queued"
    again = api.post(f"/runs/{run.pk}/answer", {"answer": "staging"})
    assert again.status_code == 409


def test_the_run_page_shows_the_question_and_its_form_answers_it(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    run, _ = _asked(monkeypatch, operator)
    client = Client()
    client.force_login(operator)

    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "data-answer-form" in page and QUESTION["ask"] in page
    assert 'value="production"' in page

    response = client.post(f"/runs/{run.pk}/answer/", {"option": "production"})

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert "data-answer-form" not in client.get(f"/runs/{run.pk}/").content.decode()


def test_the_playbook_planner_asks_for_a_value_the_task_leaves_out(
    planner_tools: Any, planner_settings: Any, operator: User
) -> None:
    planner_settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY = 0.3
    Playbook.objects.create(
        name="backup",
        task_text="back up the orders.db database",
        document={
            "goal": "back up orders.db",
            "steps": [
                {"id": "copy", "action": "record", "params": {"key": "k", "label": "orders.db"}}
            ],
        },
    )
    run = run_submit_task(title="back up the database", submitted_by=operator, planner="playbook")

    assert run_plan(run_id=run.pk) == RunStatus.AWAITING_INPUT
    item = ReviewItem.objects.get(run=run, kind="clarification")
    assert "'orders.db'" in item.context["question"] and item.context["options"] == ["orders.db"]

    run_answer(run_id=run.pk, user=operator, answer="customers.db")

    assert run_plan(run_id=run.pk) == RunStatus.EXECUTING
    run.refresh_from_db()
    assert run.current_plan is not None
    assert run.current_plan.steps.get(key="copy").params["label"] == "customers.db"


def test_an_iterative_planner_may_ask_before_its_first_step(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    first = {
        "thought": "the environment is known now",
        "next_step": "record it",
        "tool": "record",
        "arguments": {"key": "k", "label": "staging"},
        "stop": True,
        "confidence": 0.9,
    }
    model = scripted(monkeypatch, "openai", QUESTION, first)
    run = run_submit_task(
        title="deploy step by step", submitted_by=operator, planner="openai", mode="iterative"
    )

    assert run_plan(run_id=run.pk) == RunStatus.AWAITING_INPUT
    assert "ask" in model.requests[0].schema["properties"]
    run_answer(run_id=run.pk, user=operator, answer="staging")

    assert run_plan(run_id=run.pk) == RunStatus.EXECUTING
    assert "A: staging" in model.requests[1].messages[0]["content"]
    run.refresh_from_db()
    assert run.current_plan is not None
    assert run.current_plan.steps.get().params["label"] == "staging"


def _step(label: str, *, stop: bool = False) -> dict[str, Any]:
    return {
        "thought": "next",
        "next_step": f"record {label}",
        "tool": "record",
        "arguments": {"key": "k", "label": label},
        "stop": stop,
        "confidence": 0.9,
    }


def _iterative(operator: User) -> Run:
    run = run_submit_task(
        title="deploy step by step", submitted_by=operator, planner="openai", mode="iterative"
    )
    assert run_plan(run_id=run.pk) == RunStatus.EXECUTING
    return run


def test_an_iterative_planner_asks_mid_run_and_continues_on_another_worker_with_the_answer(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    model = scripted(monkeypatch, "openai", _step("built"), QUESTION, _step("staging", stop=True))
    run = _iterative(operator)

    assert run_execute(run_id=run.pk, worker_id="first") == RunStatus.AWAITING_INPUT
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_INPUT and not run.lease_owner  # no worker held
    assert run.lease_expires_at is None
    assert "ask" in model.requests[1].schema["properties"]
    assert ASK_RULE in model.requests[1].system
    item = ReviewItem.objects.get(run=run, kind="clarification", status="open")
    assert item.context == {"question": QUESTION["ask"], "options": ["staging", "production"]}
    asked = TranscriptEvent.objects.get(run=run, kind="question.asked").payload
    assert (asked["number"], asked["item_id"]) == (1, item.pk)
    assert list(run.current_plan.steps.values_list("key", "status")) == [("step-1", "succeeded")]

    run_answer(run_id=run.pk, user=operator, answer="staging")
    assert AuditEntry.objects.filter(run_id=run.pk, action="review.answered").exists()
    assert run_execute(run_id=run.pk, worker_id="second") == RunStatus.SUCCEEDED

    told = model.requests[2].messages[0]["content"]
    assert f"Q: {QUESTION['ask']}" in told and "A: staging" in told
    assert '"label": "built"' in told  # the step before the question is in the history
    run.refresh_from_db()
    assert run.current_plan.steps.get(key="step-2").params["label"] == "staging"
    assert run.current_plan.steps.get(key="step-1").status == "succeeded"
    kinds = list(
        TranscriptEvent.objects.filter(run=run)
        .filter(kind__in=["question.asked", "question.answered", "run.status"])
        .order_by("seq")
        .values_list("kind", "payload")
    )
    moves = [(k, p.get("to_status")) for k, p in kinds]
    at = moves.index(("question.asked", None))
    assert moves[at + 1 :][:3] == [
        ("run.status", "awaiting_input"),
        ("question.answered", None),
        ("run.status", "queued"),
    ]
    claims = [p["reason"] for k, p in kinds if p.get("to_status") == "executing"]
    assert claims[-1] == "claimed by second"


def test_the_question_limit_counts_questions_of_both_kinds_of_call(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    planner_settings.PLANNERWEB_MAX_QUESTIONS = 1
    done = {"thought": "done", "next_step": "", "tool": None, "arguments": None, "stop": True}
    model = scripted(monkeypatch, "openai", QUESTION, _step("staging"), done)
    run = run_submit_task(
        title="deploy step by step", submitted_by=operator, planner="openai", mode="iterative"
    )
    assert run_plan(run_id=run.pk) == RunStatus.AWAITING_INPUT
    run_answer(run_id=run.pk, user=operator, answer="staging")
    assert run_plan(run_id=run.pk) == RunStatus.EXECUTING

    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert "ask" not in model.requests[2].schema["properties"]  # its one question is spent
    assert ASK_RULE not in model.requests[2].system
    assert "A: staging" in model.requests[2].messages[0]["content"]
    assert ReviewItem.objects.filter(run=run, kind="clarification").count() == 1


def test_a_question_asked_mid_run_unanswered_follows_its_kinds_timeout_action(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: User
) -> None:
    ReviewKindSettings.objects.create(
        kind="clarification", sla_minutes=30, timeout_action=TimeoutAction.AUTO_ABORT
    )
    model = scripted(monkeypatch, "openai", _step("built"), QUESTION)
    run = _iterative(operator)
    assert run_execute(run_id=run.pk) == RunStatus.AWAITING_INPUT

    expired = review_expire_overdue(now=timezone.now() + timedelta(minutes=31))

    assert expired == [ReviewItem.objects.get(run=run).pk]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert len(model.requests) == 2  # the planner was not asked again
    with pytest.raises(RunError, match="no question waiting"):
        run_answer(run_id=run.pk, user=operator, answer="staging")

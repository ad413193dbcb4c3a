"""Model output a database cannot store: refused and repaired, every call recorded, never a loop.

Runs on SQLite and (in CI's second pass, or with DATABASE_URL) on PostgreSQL, which
refuses NUL characters and lone surrogates in text and jsonb outright.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import DatabaseError, connection
from django.utils import timezone

from reviews.models import EscalationCause, ReviewItem
from runs.lifecycle import planning
from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import planning_claim, run_needs_planning, run_plan, run_submit_task
from runs.models import LlmCall, Plan, Run, RunStatus, TranscriptEvent
from runs.planning.providers.base import ModelReply
from tests.runs.planning.conftest import good_plan
from tests.runs.planning.test_planner import scripted

pytestmark = pytest.mark.django_db(transaction=True)


def one_step(value: Any) -> dict[str, Any]:
    return {"steps": [{"id": "a", "action": "record", "params": {"key": "k", "label": value}}]}


def feedback(model: Any, request: int) -> str:
    """The repair message the model got with its ``request``-th request (1-based)."""
    return str(model.requests[request - 1].messages[-1]["content"])


def test_nul_nan_and_huge_integers_are_repaired_like_any_problem_and_every_call_is_kept(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    planner_settings.PLANNERWEB_PLANNER_REPAIR_ROUNDS = 3
    raw_nul = ModelReply(text='{"steps": [{"id": "a\x00"}]}', data=one_step("a\x00b"))
    model = scripted(
        monkeypatch, "openai", raw_nul, one_step(float("nan")), one_step(10**5000), good_plan()
    )
    run = run_submit_task(title="record", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert "NUL characters" in feedback(model, 2)
    assert "nan is not a finite number" in feedback(model, 3)
    assert "64 bits" in feedback(model, 4)
    assert "steps[0].params.label" in feedback(model, 4)
    calls = LlmCall.objects.filter(run=run).order_by("id")
    assert [c.purpose for c in calls] == ["plan", "repair", "repair", "repair"]
    events = TranscriptEvent.objects.filter(run=run, kind="planner.call").order_by("seq")
    assert [e.payload["call_id"] for e in events] == [c.pk for c in calls]
    # The raw answer holding a NUL is kept, escaped, where the database could not take it.
    assert events[0].payload["response"] == '{"steps": [{"id": "a\\x00"}]}'


def test_a_model_that_keeps_answering_unstorable_values_escalates_once_with_its_calls(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    bad = [one_step("x\ud800"), one_step(float("inf")), one_step(-(10**4400))]
    scripted(monkeypatch, "openai", *bad)
    run = run_submit_task(title="record", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    assert not run_needs_planning(run.pk)  # never planned again by itself
    assert LlmCall.objects.filter(run=run).count() == 3
    item = ReviewItem.objects.get(run=run)
    assert item.cause == EscalationCause.INVALID_PLANNER_OUTPUT
    plan = Plan.objects.get(run=run)  # stored, escaped, with its problem
    assert not plan.is_valid and plan.errors[0]["code"] == "unstorable"
    assert plan.document["steps"][0]["params"]["label"] == "(an integer of 14617 bits)"


def test_a_run_whose_planning_never_finishes_escalates_as_planner_failed(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    run = run_submit_task(title="record", submitted_by=operator, planner="openai")
    lapsed = timezone.now() - timedelta(seconds=1)
    for attempt in range(1, planner_settings.PLANNERWEB_MAX_PLANNING_ATTEMPTS + 1):
        assert planning_claim(run_id=run.pk, worker_id=f"w{attempt}") is not None
        # The worker dies while the model thinks: its lease lapses.
        Run.objects.filter(pk=run.pk).update(lease_expires_at=lapsed)
        assert Run.objects.get(pk=run.pk).planning_attempts == attempt
    model = scripted(monkeypatch, "openai", good_plan())
    assert run_plan(run_id=run.pk, worker_id="next") == RunStatus.ESCALATED
    assert model.requests == []  # not asked again
    item = ReviewItem.objects.get(run=run)
    assert item.cause == EscalationCause.PLANNER_FAILED
    assert "attempted 3 times" in Run.objects.get(pk=run.pk).stop_reason
    assert not run_needs_planning(run.pk)


def test_an_outcome_that_fails_to_store_escalates_and_keeps_the_calls(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    scripted(monkeypatch, "openai", good_plan())

    def refused(**_: Any) -> str:
        raise DatabaseError("value too long for type character varying(100)")

    monkeypatch.setattr(planning, "plan_store", refused)
    run = run_submit_task(title="record", submitted_by=operator, planner="openai")
    assert run_plan(run_id=run.pk, worker_id="w") == RunStatus.ESCALATED
    assert LlmCall.objects.filter(run=run).count() == 1
    assert TranscriptEvent.objects.filter(run=run, kind="planner.call").count() == 1
    item = ReviewItem.objects.get(run=run)
    assert item.cause == EscalationCause.PLANNER_FAILED
    assert "could not be stored" in Run.objects.get(pk=run.pk).stop_reason


@pytest.mark.postgres
def test_postgresql_refuses_what_the_planner_now_stores_escaped(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    assert connection.vendor == "postgresql"
    run = run_submit_task(title="record", submitted_by=operator, planner="openai")
    with pytest.raises(DatabaseError):  # what made the run loop: the row never stored
        Plan.objects.create(run=run, version=9, source="planner", document=one_step("a\x00"))
    scripted(monkeypatch, "openai", *[one_step("a\x00")] * 3)
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    assert Plan.objects.get(run=run).document == one_step("a\\x00")
    assert LlmCall.objects.filter(run=run).count() == 3


def test_each_model_call_is_stored_when_it_returns_so_a_dying_planner_loses_none(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    # The second call crashes the planner (as a dying worker would end it): the first
    # call, answered before, is already stored with its event.
    model = scripted(monkeypatch, "openai", one_step(float("nan")), RuntimeError("worker died"))
    original = model.complete

    def complete(request: Any) -> Any:
        if model.script and isinstance(model.script[0], RuntimeError):
            raise model.script.pop(0)
        return original(request)

    monkeypatch.setattr(model, "complete", complete)
    run = run_submit_task(title="record", submitted_by=operator, planner="openai")
    assert run_plan(run_id=run.pk, worker_id="w") == RunStatus.ESCALATED
    calls = list(LlmCall.objects.filter(run=run))
    assert [c.purpose for c in calls] == ["plan"]
    event = TranscriptEvent.objects.get(run=run, kind="planner.call")
    assert event.payload["call_id"] == calls[0].pk

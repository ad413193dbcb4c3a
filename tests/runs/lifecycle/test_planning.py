"""Planning a run: the plan is stored, accounted and executed; invalid plans and outages escalate; secrets stay out."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from django.db import OperationalError

from reviews.models import EscalationCause, ReviewItem
from runs.lifecycle import planning
from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import LlmCall, Plan, RunStatus, Step, TranscriptEvent
from runs.planning.providers.base import ProviderError
from tests.runs.planning.conftest import good_plan
from tests.runs.planning.test_planner import scripted

pytestmark = pytest.mark.django_db


@pytest.mark.django_db(transaction=True)
def test_a_planner_task_is_planned_stored_accounted_and_executed(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    key = uuid.uuid4().hex
    model = scripted(
        monkeypatch, "openai", {"steps": [{"id": "a", "action": "nope"}]}, good_plan(key)
    )
    run = run_submit_task(title="record two labels", submitted_by=operator, planner="openai")
    assert run.task.planner == "openai" and run.status == RunStatus.QUEUED
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    plan = Plan.objects.get(run=run)
    assert plan.source == Plan.Source.PLANNER and plan.is_valid
    calls = list(LlmCall.objects.filter(run=run).order_by("id"))
    assert [c.purpose for c in calls] == ["plan", "repair"]
    assert all(c.plan_id == plan.pk for c in calls)
    assert sum(c.tokens_in for c in calls) == sum(100 + len(r.system) // 4 for r in model.requests)
    kinds = list(TranscriptEvent.objects.filter(run=run).values_list("kind", flat=True))
    assert kinds.count("planner.call") == 2
    assert (
        kinds.index("planner.call") < kinds.index("plan.created") < kinds.index("planner.decision")
    )
    decision = TranscriptEvent.objects.get(run=run, kind="planner.decision").payload
    assert decision["ok"] and decision["totals"]["calls"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_plan_that_stays_invalid_escalates_the_run_and_nothing_runs(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    bad = {"steps": [{"id": "a", "action": "drop_database", "params": {}}]}
    scripted(monkeypatch, "openai", bad, bad, bad)
    run = run_submit_task(title="t", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    run.refresh_from_db()
    assert "still invalid after 2 repair round(s)" in run.stop_reason
    assert run.current_plan is None and not Step.objects.filter(run=run).exists()
    plan = Plan.objects.get(run=run)
    assert not plan.is_valid and plan.errors  # the operator sees what was wrong


@pytest.mark.django_db(transaction=True)
def test_a_provider_outage_escalates_with_the_providers_reason(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    scripted(
        monkeypatch, "openai", ProviderError("openai server error: HTTP 500", kind="server_error")
    )
    run = run_submit_task(title="t", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    run.refresh_from_db()
    assert "HTTP 500" in run.stop_reason
    assert LlmCall.objects.get(run=run).ok is False
    assert ReviewItem.objects.get(run=run).cause == "planner_unavailable"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_openai_key")
def test_a_missing_api_key_escalates_as_an_unconfigured_planner(
    planner_tools: Any, planner_settings: Any, operator: Any
) -> None:
    run = run_submit_task(title="t", submitted_by=operator, planner="openai")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    item = ReviewItem.objects.get(run=run)
    assert item.cause == "planner_not_configured"
    assert "OPENAI_API_KEY is not set" in item.reason_opened
    assert EscalationCause(item.cause).label == "The planner is not configured (API key not set)"


SECRET = "sk-live-0123456789abcdefghijklmnop"


def leaky_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenAI planner, keyed with ``SECRET``, answers a plan whose goal holds it and PII."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    leaky = good_plan()
    leaky["goal"] = f"mail alice@example.com, call +1 (555) 010-2030, key {SECRET}"
    scripted(monkeypatch, "openai", leaky)


def planner_calls_stored(run: Any) -> list[Any]:
    """The payloads of the run's ``planner.call`` events, as stored."""
    return list(
        TranscriptEvent.objects.filter(run=run, kind="planner.call").values_list(
            "payload", flat=True
        )
    )


@pytest.mark.django_db(transaction=True)  # planning stores each call from a thread of its own
def test_secrets_and_emails_never_reach_the_transcript(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    leaky_planner(monkeypatch)
    run = run_submit_task(
        title="tell bob@example.org",
        description="the key is zz-custom-key-value-99 and sk-ant-abcdefghijklmnopqrstu",
        submitted_by=operator,
        planner="openai",
    )
    monkeypatch.setenv("PLANNERWEB_LOCAL_API_KEY", "zz-custom-key-value-99")
    planning.run_plan(run_id=run.pk)
    stored = json.dumps(planner_calls_stored(run))
    for leaked in (
        SECRET,
        "alice@example.com",
        "bob@example.org",
        "555",
        "zz-custom-key",
        "sk-ant-",
    ):
        assert leaked not in stored, leaked
    assert "[REDACTED:" in stored


@pytest.mark.django_db(transaction=True)
def test_a_call_that_cannot_be_stored_when_it_returns_is_stored_once_with_the_plan_redacted(
    planner_tools: Any, planner_settings: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    leaky_planner(monkeypatch)
    planner_thread = threading.get_ident()  # run_plan stores the outcome on this thread
    append = planning.append_events
    refused: list[int] = []

    def locked_away_from_the_planner(run_id: int, events: Any) -> Any:
        if threading.get_ident() != planner_thread:  # the model call's own store, as it returns
            refused.append(run_id)
            raise OperationalError("database is locked")
        return append(run_id, events)

    monkeypatch.setattr(planning, "append_events", locked_away_from_the_planner)
    run = run_submit_task(title="t", submitted_by=operator, planner="openai")
    assert planning.run_plan(run_id=run.pk) == RunStatus.EXECUTING
    assert refused == [run.pk]
    assert LlmCall.objects.filter(run=run).count() == 1  # its own store rolled back, kept later
    payloads = planner_calls_stored(run)
    assert len(payloads) == 1
    stored = json.dumps(payloads)
    assert SECRET not in stored and "alice@example.com" not in stored and "555" not in stored
    assert "[REDACTED:" in stored

"""What the run API tells an operator watching costs and retries: planner, tokens, cost and
its price, confidence, trace id; steps of every plan version; attempts; linked retries."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import LlmCall, Run, RunStatus, Step, TranscriptEvent
from runs.planning.pricing import SETTINGS_SOURCE
from tests.runs.api.conftest import api_as
from tests.runs.planning.conftest import planner_settings, planner_tools  # noqa: F401
from tests.runs.planning.test_planner import scripted

pytestmark = pytest.mark.django_db(transaction=True)


def _plan(key: str, action: str, confidence: float = 0.8) -> dict[str, Any]:
    return {
        "goal": "record, then one more",
        "steps": [
            {
                "id": "a",
                "action": "record",
                "params": {"key": key, "label": "a"},
                "confidence": 0.9,
            },
            {
                "id": "b",
                "action": action,
                "params": {"key": key, "label": "b"},
                "depends_on": ["a"],
                "confidence": confidence,
            },
        ],
    }


@pytest.fixture
def planned_run(
    planner_tools: Any,  # noqa: F811
    planner_settings: Any,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    operator: User,
) -> Callable[..., Run]:
    def start(*script: Any) -> Run:
        scripted(monkeypatch, "openai", *script)
        run = run_submit_task(
            title="observed", submitted_by=operator, planner="openai", mode="upfront", max_replans=1
        )
        run_execute(run_id=run.pk)
        run.refresh_from_db()
        return run

    return start


def test_the_run_says_planner_mode_tokens_cost_with_its_price_and_confidence(
    planned_run: Callable[..., Run], operator: User, settings: Any
) -> None:
    settings.PLANNERWEB_LLM_PRICES = {"scripted-1": {"input": 1.0, "output": 2.0}}
    key = uuid.uuid4().hex
    run = planned_run(_plan(key, "record", confidence=0.7))
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    body = api_as(operator).get(f"/runs/{run.pk}").json()
    calls = list(LlmCall.objects.filter(run=run))
    assert (body["planner"], body["mode"], body["model_calls"]) == ("openai", "upfront", len(calls))
    assert body["tokens_in"] == sum(c.tokens_in for c in calls) > 0
    assert body["tokens_out"] == sum(c.tokens_out for c in calls) > 0
    expected = sum(c.tokens_in * 1.0 + c.tokens_out * 2.0 for c in calls) / 1_000_000
    assert body["cost"] == pytest.approx(expected, abs=1e-6)
    assert body["cost_prices"] == [SETTINGS_SOURCE] and body["unpriced_calls"] == 0
    assert body["confidence"] == 0.7  # the least sure step
    assert body["trace_id"] is None  # tracing is off by default


def test_an_unpriced_model_has_no_cost_and_names_no_price(
    planned_run: Callable[..., Run], operator: User
) -> None:
    run = planned_run(_plan(uuid.uuid4().hex, "record"))
    body = api_as(operator).get(f"/runs/{run.pk}").json()
    assert body["model_calls"] >= 1 and body["unpriced_calls"] == body["model_calls"]
    assert (body["cost"], body["cost_prices"]) == (None, [])


def test_steps_of_every_plan_version_say_their_version_and_a_replaced_step_stays(
    planned_run: Callable[..., Run], operator: User
) -> None:
    key = uuid.uuid4().hex
    fix = {
        "goal": "record without the broken step",
        "steps": [{"id": "c", "action": "record", "params": {"key": key, "label": "c"}}],
    }
    run = planned_run(_plan(key, "fail"), fix)
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    client = api_as(operator)
    current = client.get(f"/runs/{run.pk}/steps").json()
    assert {(s["key"], s["plan_version"]) for s in current} == {("a", 2), ("c", 2)}
    every = client.get(f"/runs/{run.pk}/steps", {"all_versions": True}).json()
    assert [(s["plan_version"], s["key"], s["status"]) for s in every] == [
        (1, "a", "succeeded"),
        (1, "b", "failed"),
        (2, "a", "succeeded"),
        (2, "c", "succeeded"),
    ]
    failed = every[1]
    assert failed["error"] and [(t["attempt"], t["status"]) for t in failed["attempt_log"]] == [
        (1, "failed")
    ]
    assert failed["attempt_log"][0]["error"] == failed["error"]


def test_a_retried_step_that_succeeded_lists_each_attempt_with_its_own_error(
    execute: Callable[..., Run], operator: User, key: str
) -> None:
    run = execute(
        {
            "steps": [
                {
                    "id": "a",
                    "action": "flaky",
                    "params": {"key": key, "label": "a", "fail_times": 2},
                }
            ]
        }
    )
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    (step,) = api_as(operator).get(f"/runs/{run.pk}/steps").json()
    assert (step["status"], step["attempts"], step["error"]) == ("succeeded", 3, "")
    assert Step.objects.get(run=run, key="a").error == ""
    assert [(t["attempt"], t["status"], t["error"]) for t in step["attempt_log"]] == [
        (1, "failed", "a failed on attempt 1"),
        (2, "failed", "a failed on attempt 2"),
        (3, "succeeded", ""),
    ]
    assert all(t["finished_at"] >= t["started_at"] for t in step["attempt_log"])


def test_a_retry_links_both_runs_in_both_transcripts(
    execute: Callable[..., Run], operator: User, key: str
) -> None:
    run = execute({"steps": [{"id": "a", "action": "fail", "params": {"key": key, "label": "a"}}]})
    assert run.status == RunStatus.FAILED
    response = api_as(operator).post(f"/runs/{run.pk}/retry", {"step": "a"})
    assert response.status_code == 201, response.json()
    new = response.json()["id"]
    for of in (run.pk, new):
        (event,) = TranscriptEvent.objects.filter(run_id=of, kind="run.retried")
        assert (event.payload["of_run"], event.payload["new_run"]) == (run.pk, new)

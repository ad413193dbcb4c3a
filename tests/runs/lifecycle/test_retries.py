"""Retrying a failed run from its failed step: a new run of the task, finished work carried over."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.lifecycle.claim import run_execute
from runs.lifecycle.errors import RunError
from runs.lifecycle.retries import retryable_steps, run_retry
from runs.models import Run, RunStatus, Step, Tool, TranscriptEvent
from runs.plan_versions import OUTCOME_FIELDS
from runs.redaction import Redactor
from tests.runs import toolbox
from tests.runs.api.conftest import api_as

pytestmark = pytest.mark.django_db(transaction=True)


def plan(key: str, *, rollback: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = {
        "steps": [
            {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
            {
                "id": "b",
                "action": "flaky_once",
                "params": {"key": key, "label": "b", "fail_times": 1},
                "depends_on": ["a"],
            },
            {
                "id": "c",
                "action": "record",
                "params": {"key": key, "label": "c"},
                "depends_on": ["b"],
            },
        ]
    }
    if rollback:
        document["rollback"] = [{"action": "record", "params": {"key": key, "label": "undo"}}]
    return document


def test_a_failed_run_retried_from_its_failed_step_carries_finished_steps_over(
    execute: Callable[..., Run], key: str, operator: User
) -> None:
    old = execute(plan(key))
    assert old.status == RunStatus.FAILED
    assert retryable_steps(old) == {"b"}
    # the run page passes the steps it loaded: the same answer without a query
    assert retryable_steps(old, Step.objects.filter(run=old)) == {"b"}
    assert toolbox.CALLS[key] == ["a", "b#1"]
    new = run_retry(run_id=old.pk, step="b", user=operator)
    assert (new.status, new.task_id) == (RunStatus.QUEUED, old.task_id)
    assert run_execute(run_id=new.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "b#1", "b#2", "c"]  # a was not run again
    a = Step.objects.get(run=new, key="a")
    assert a.status == "succeeded" and a.result["label"] == "a"
    retried = TranscriptEvent.objects.get(run=old, kind="run.retried").payload
    assert (retried["new_run"], retried["step"], retried["carried_over"]) == (new.pk, "b", ["a"])
    assert TranscriptEvent.objects.filter(run=new, kind="run.retried").count() == 1
    old.refresh_from_db()
    assert old.status == RunStatus.FAILED  # history stays as it was


def test_a_step_carried_into_a_retry_keeps_its_verdict_attempts_error_and_times(
    execute: Callable[..., Run], make_tool: Callable[..., Tool], key: str, operator: User
) -> None:
    make_tool(
        "checked_flaky",
        "flaky",
        idempotent=True,
        max_retries=2,
        checks=[{"type": "range", "path": "attempt", "min": 1}],
    )
    document = plan(key)
    document["steps"][0] = {
        "id": "a",
        "action": "checked_flaky",
        "params": {"key": key, "label": "a", "fail_times": 1},
    }
    old = execute(document)
    assert old.status == RunStatus.FAILED
    original = Step.objects.get(run=old, key="a")
    # The first attempt's error is the attempt's, not the step's: a success clears it.
    assert (original.verdict, original.attempts, original.error) == ("pass", 2, "")
    new = run_retry(run_id=old.pk, step="b", user=operator)
    carried = Step.objects.get(run=new, key="a")
    assert {f: getattr(carried, f) for f in OUTCOME_FIELDS} == {
        f: getattr(original, f) for f in OUTCOME_FIELDS
    }


def test_after_a_rollback_every_step_runs_again(
    execute: Callable[..., Run], key: str, operator: User
) -> None:
    old = execute(plan(key, rollback=True))
    assert old.status == RunStatus.ROLLED_BACK
    new = run_retry(run_id=old.pk, step="b", user=operator)
    assert run_execute(run_id=new.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "b#1", "undo", "a", "b#2", "c"]


def test_only_failed_steps_of_failed_or_rolled_back_runs_can_be_retried(
    execute: Callable[..., Run], key: str, operator: User
) -> None:
    old = execute(plan(key))
    with pytest.raises(RunError, match="not a failed step"):
        run_retry(run_id=old.pk, step="a", user=operator)
    done = execute(
        {"steps": [{"id": "x", "action": "record", "params": {"key": key, "label": "x"}}]}
    )
    with pytest.raises(RunError, match="only a failed or rolled-back run"):
        run_retry(run_id=done.pk, step="x", user=operator)
    assert Run.objects.count() == 2  # nothing was created


def test_the_api_and_the_page_retry_for_operators_only(
    execute: Callable[..., Run], key: str, operator: User, reviewer: User
) -> None:
    old = execute(plan(key))
    assert api_as(reviewer).post(f"/runs/{old.pk}/retry", {"step": "b"}).status_code == 403
    assert api_as(operator).post(f"/runs/{old.pk}/retry", {"step": "zz"}).status_code == 409
    created = api_as(operator).post(f"/runs/{old.pk}/retry", {"step": "b"})
    assert created.status_code == 201, created.json()
    assert created.json()["task_id"] == old.task_id
    page = Client()
    page.force_login(operator)
    html = page.get(f"/runs/{old.pk}/").content.decode()
    assert "data-retry-form" in html and "retried from step b" in html
    response = page.post(f"/runs/{old.pk}/retry/", {"step": "b"})
    assert response.status_code == 302 and response["Location"] != f"/runs/{old.pk}/"
    refused = Client()
    refused.force_login(reviewer)
    assert refused.post(f"/runs/{old.pk}/retry/", {"step": "b"}).status_code == 403


def test_a_retry_numbers_redacted_values_on_from_the_run_it_retries(
    execute: Callable[..., Run], key: str, operator: User
) -> None:
    document = plan(key)
    document["steps"][0]["params"]["label"] = "mail alice@example.com"
    old = execute(document)
    new = run_retry(run_id=old.pk, step="b", user=operator)
    red = Redactor(new.pk)
    # The address the old run numbered keeps its number; a new one gets the next.
    assert red.text("alice@example.com, bob@example.org") == (
        "[REDACTED:email:1], [REDACTED:email:2]"
    )
    assert Step.objects.get(run=new, key="a").params["label"] == "mail [REDACTED:email:1]"

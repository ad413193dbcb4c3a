"""Picking a run up again: finished steps never rerun, a mid-flight step without idempotence escalates, a live lease is respected."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)


def submit(document: Any) -> Run:
    run = run_submit_plan(title="t", document=document, submitted_by=None)
    assert run.status == RunStatus.QUEUED, run.stop_reason
    return run


def _crash_after_first_step(run: Run, *, second_status: str) -> None:
    """Leave the run as a worker killed mid-run would: lease expired, a step running."""
    first, second = Step.objects.filter(run=run, phase="main").order_by("position")
    Step.objects.filter(pk=first.pk).update(status="succeeded", attempts=1, result={"label": "a"})
    Step.objects.filter(pk=second.pk).update(status=second_status, attempts=1)
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.EXECUTING,
        lease_owner="dead-worker",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )


def test_a_run_picked_up_after_a_crash_never_reruns_finished_steps(
    execute: Callable[..., Run], key: str
) -> None:
    run = submit(
        {
            "steps": [
                {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
                {
                    "id": "b",
                    "action": "flaky",
                    "params": {"key": key, "label": "b", "fail_times": 0},
                    "depends_on": ["a"],
                },
            ]
        }
    )
    _crash_after_first_step(run, second_status="running")
    assert run_execute(run_id=run.pk, worker_id="new-worker") == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["b#1"]  # a was not run again; b (idempotent) was retried


def test_a_non_idempotent_step_caught_mid_flight_escalates(
    execute: Callable[..., Run], key: str
) -> None:
    run = submit(
        {
            "steps": [
                {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
                {
                    "id": "b",
                    "action": "record",
                    "params": {"key": key, "label": "b"},
                    "depends_on": ["a"],
                },
            ]
        }
    )
    _crash_after_first_step(run, second_status="running")
    assert run_execute(run_id=run.pk, worker_id="new-worker") == RunStatus.ESCALATED
    run.refresh_from_db()
    assert run.stop_reason.startswith("step b may have partly run")
    assert toolbox.CALLS[key] == []


def test_a_run_held_by_a_live_worker_is_not_taken(execute: Callable[..., Run], key: str) -> None:
    run = submit({"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]})
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.EXECUTING,
        lease_owner="alive",
        lease_expires_at=timezone.now() + timedelta(seconds=60),
    )
    assert run_execute(run_id=run.pk, worker_id="other") == RunStatus.EXECUTING
    assert toolbox.CALLS[key] == []

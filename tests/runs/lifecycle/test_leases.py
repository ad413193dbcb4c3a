"""Fenced leases: an executor that lost its lease stops its tools and writes nothing."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection

from runs.execution.engine import RunExecutor
from runs.lifecycle.claim import run_claim
from runs.lifecycle.planning_hooks import PlanningHooks
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.supervision import Supervision
from runs.models import Run, RunStatus, Step, TranscriptEvent
from tests.runs import toolbox
from tests.runs.lifecycle.test_dispatch import two_steps

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_executor_that_lost_its_lease_writes_nothing(
    fast_settings: Any, toolset: None, key: str
) -> None:
    run = run_submit_plan(title="t", document=two_steps(key), submitted_by=None)
    token = run_claim(run_id=run.pk, worker_id="old")
    assert token is not None
    Run.objects.filter(pk=run.pk).update(lease_owner="new/owner")  # taken over meanwhile
    before = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    status = RunExecutor(
        run.pk, supervision=Supervision(), planning=PlanningHooks(), lease_owner=token
    ).execute()
    assert status == RunStatus.EXECUTING  # untouched: it is the new owner's run now
    assert list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True)) == before
    assert set(Step.objects.filter(run=run).values_list("status", flat=True)) == {"pending"}
    assert toolbox.CALLS[key] == []  # the commit that starts a step failed first


def test_an_executor_whose_lease_is_taken_mid_step_stops_its_tools_and_writes_nothing(
    fast_settings: Any, toolset: None, key: str
) -> None:
    run = run_submit_plan(
        title="t",
        document={
            "steps": [
                {
                    "id": "a",
                    "action": "wait_gate",
                    "params": {"key": key, "label": "a", "gate": "g"},
                }
            ]
        },
        submitted_by=None,
    )
    token = run_claim(run_id=run.pk, worker_id="old")
    assert token is not None
    result: list[str] = []

    def execute() -> None:
        try:
            result.append(
                RunExecutor(
                    run.pk, supervision=Supervision(), planning=PlanningHooks(), lease_owner=token
                ).execute()
            )
        finally:
            connection.close()

    thread = threading.Thread(target=execute, daemon=True)
    thread.start()
    for _ in range(500):
        if toolbox.CALLS[key]:
            break
        time.sleep(0.01)
    assert toolbox.CALLS[key] == ["start:a"]
    seqs = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    Run.objects.filter(pk=run.pk).update(lease_owner="thief/1")
    thread.join(5)
    assert not thread.is_alive(), "the executor kept going after losing its lease"
    assert result == [RunStatus.EXECUTING]
    assert toolbox.CALLS[key] == ["start:a"]  # the tool was stopped, not finished
    assert list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True)) == seqs
    assert Step.objects.get(run=run).status == "running"  # left for the new owner to judge

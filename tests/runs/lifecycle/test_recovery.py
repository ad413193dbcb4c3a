"""Orphaned runs are found again: expired leases and lost tasks are requeued once, the rest left alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from runs.lifecycle.recovery import runs_recover
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.worker import RunWorker
from runs.models import Run, RunStatus, Task, TranscriptEvent
from runs.tasks import execute_run
from tests.runs import toolbox
from tests.runs.lifecycle.test_dispatch import task_rows, two_steps

pytestmark = pytest.mark.django_db(transaction=True)


def orphan(status: str, *, owner: str = "dead-worker", expired_seconds: float = 10) -> Run:
    run = Run.objects.create(task=Task.objects.create(title="orphan"))
    Run.objects.filter(pk=run.pk).update(
        status=status,
        lease_owner=owner,
        lease_expires_at=timezone.now() - timedelta(seconds=expired_seconds),
        created_at=timezone.now() - timedelta(minutes=5),
    )
    return run


def test_a_run_whose_lease_expired_is_requeued_once_with_a_transcript_line(
    fast_settings: Any,
) -> None:
    run = orphan(RunStatus.EXECUTING)
    assert runs_recover() == [run.pk]
    assert task_rows(run.pk) == 1
    run.refresh_from_db()
    assert run.lease_owner == ""  # the dead worker is fenced out should it come back
    event = TranscriptEvent.objects.get(run=run, kind="run.requeued")
    assert "lease of dead-worker expired while executing" in event.payload["reason"]
    # The task is waiting: sweeping again does not queue the run a second time.
    assert runs_recover() == []
    assert task_rows(run.pk) == 1


def test_a_queued_run_that_lost_its_task_is_requeued(fast_settings: Any) -> None:
    run = orphan(RunStatus.QUEUED, owner="")
    Run.objects.filter(pk=run.pk).update(lease_expires_at=None)
    assert runs_recover() == [run.pk]
    assert task_rows(run.pk) == 1


def test_runs_with_a_live_lease_or_a_waiting_task_or_a_fresh_start_are_left_alone(
    fast_settings: Any,
) -> None:
    live = orphan(RunStatus.EXECUTING, expired_seconds=-60)  # lease valid for a minute more
    waiting = orphan(RunStatus.EXECUTING)
    execute_run.enqueue(waiting.pk)
    fresh = Run.objects.create(task=Task.objects.create(title="just submitted"))
    finished = orphan(RunStatus.SUCCEEDED)
    assert runs_recover() == []
    assert [task_rows(r.pk) for r in (live, waiting, fresh, finished)] == [0, 1, 0, 0]


def test_a_requeued_run_is_taken_over_by_the_next_worker(
    fast_settings: Any, toolset: None, key: str
) -> None:
    run = run_submit_plan(title="t", document=two_steps(key), submitted_by=None)
    DBTaskResult.objects.all().delete()  # as if the process died before its task was stored
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    RunWorker(worker_id="w-recover", batch=True, recovery_seconds=0.001).run()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["a", "b"]

"""Runs reach workers through Django Tasks: enqueued on commit, taken by a worker, woken at once."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection, transaction
from django_tasks_db.models import DBTaskResult

from runs.lifecycle.claim import run_claim, run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.worker import RunWorker
from runs.models import Run, RunStatus, TranscriptEvent
from runs.tasks import execute_run
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)


def task_rows(run_id: int, status: str = "READY") -> int:
    return sum(
        1
        for args in DBTaskResult.objects.filter(
            task_path=execute_run.module_path, status=status
        ).values_list("args_kwargs", flat=True)
        if args["args"] == [run_id]
    )


def two_steps(key: str) -> dict[str, Any]:
    return {
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


def test_a_submitted_run_gets_its_task_only_when_the_submission_commits(
    toolset: None, key: str
) -> None:
    with transaction.atomic():
        run = run_submit_plan(title="t", document=two_steps(key), submitted_by=None)
        assert task_rows(run.pk) == 0  # rolled back with the run, were this to fail
    assert task_rows(run.pk) == 1


def test_a_rolled_back_submission_leaves_no_task(toolset: None, key: str) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        run = run_submit_plan(title="t", document=two_steps(key), submitted_by=None)
        raise RuntimeError("the caller's transaction fails")
    assert not Run.objects.filter(pk=run.pk).exists()
    assert DBTaskResult.objects.count() == 0


def test_a_worker_executes_queued_runs_from_the_task_queue(
    fast_settings: Any, toolset: None, key: str
) -> None:
    runs = [
        run_submit_plan(title="t", document=two_steps(key), submitted_by=None) for _ in range(3)
    ]
    RunWorker(worker_id="w-test", batch=True, recovery_seconds=0).run()
    for run in runs:
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED
        assert task_rows(run.pk, "SUCCESSFUL") == 1
    assert sorted(toolbox.CALLS[key]) == ["a"] * 3 + ["b"] * 3


def test_a_duplicate_task_for_a_run_another_worker_holds_backs_off(
    fast_settings: Any, toolset: None, key: str
) -> None:
    run = run_submit_plan(title="t", document=two_steps(key), submitted_by=None)
    token = run_claim(run_id=run.pk, worker_id="holder")
    assert token is not None
    events_before = TranscriptEvent.objects.filter(run=run).count()
    assert run_execute(run_id=run.pk, worker_id="latecomer") == RunStatus.EXECUTING
    assert toolbox.CALLS[key] == []
    assert TranscriptEvent.objects.filter(run=run).count() == events_before
    assert Run.objects.get(pk=run.pk).lease_owner == token


def test_an_idle_worker_wakes_as_soon_as_a_run_is_enqueued_in_its_process(
    fast_settings: Any, toolset: None, key: str
) -> None:
    worker = RunWorker(worker_id="w-wake", interval=30, recovery_seconds=0)

    def serve() -> None:
        try:
            worker.run()
        finally:
            connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        time.sleep(0.2)  # the worker found nothing and waits (for up to 30 s)
        started = time.monotonic()
        run = run_submit_plan(title="t", document=two_steps(key), submitted_by=None)
        while Run.objects.get(pk=run.pk).status != RunStatus.SUCCEEDED:
            assert time.monotonic() - started < 10, "the worker was not woken"
            time.sleep(0.01)
        assert time.monotonic() - started < 5
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()

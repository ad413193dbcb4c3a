"""Runs reach workers through Django Tasks; orphaned runs are found again; lost leases write nothing."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from runs.execution.engine import RunExecutor
from runs.lifecycle.claim import run_claim, run_execute
from runs.lifecycle.recovery import runs_recover
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.worker import RunWorker
from runs.models import Run, RunStatus, Step, Task, TranscriptEvent
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


# -- recovery ---------------------------------------------------------------------------
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


# -- fencing ----------------------------------------------------------------------------
def test_an_executor_that_lost_its_lease_writes_nothing(
    fast_settings: Any, toolset: None, key: str
) -> None:
    run = run_submit_plan(title="t", document=two_steps(key), submitted_by=None)
    token = run_claim(run_id=run.pk, worker_id="old")
    assert token is not None
    Run.objects.filter(pk=run.pk).update(lease_owner="new/owner")  # taken over meanwhile
    before = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    status = RunExecutor(run.pk, lease_owner=token).execute()
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
            result.append(RunExecutor(run.pk, lease_owner=token).execute())
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

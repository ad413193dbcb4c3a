"""Resource locks across real worker processes on PostgreSQL: exclusion, and release after a crash."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from runs.lifecycle.submit import run_submit_plan
from runs.models import ResourceLock, Run, RunStatus, Tool, TranscriptEvent
from runs.statemachine import RUN_TERMINAL
from tests.runs.processes import child_env, db_worker, processes, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def deploy() -> None:
    Tool.objects.create(
        name="deploy",
        kind=Tool.Kind.PYTHON,
        config={"callable": "tests.runs.toolbox.span"},
        parameters_schema={"type": "object", "properties": {"environment": {"type": "string"}}},
        timeout_seconds=60,
        locks=["env:{{ params.environment }}"],
    )


def submit(out: Path, label: str, waiters: int = 0) -> Run:
    params = {"path": str(out), "label": label, "environment": "production", "waiters": waiters}
    return run_submit_plan(
        title=label,
        document={"steps": [{"id": "deploy", "action": "deploy", "params": params}]},
        submitted_by=None,
    )


def holds(run: Run) -> bool:
    return ResourceLock.objects.filter(run=run, granted=True).exists()


def said_waiting(run: Run) -> bool:
    return TranscriptEvent.objects.filter(run=run, kind="step.lock_waiting").exists()


def ended(*runs: Run) -> Any:
    ids = [r.pk for r in runs]
    return lambda: Run.objects.filter(pk__in=ids, status__in=RUN_TERMINAL).count() == len(ids)


def spans(out: Path) -> list[str]:
    return out.read_text().split()


def test_two_workers_never_run_steps_holding_the_same_key_at_once(
    deploy: None, tmp_path: Path
) -> None:
    out = tmp_path / "spans.txt"
    env = child_env(tmp_path, PLANNERWEB_LOCK_POLL_SECONDS="0.05")
    logs = tmp_path / "logs"
    with processes(db_worker("w0"), db_worker("w1"), env=env, logs=logs):
        # The first stays inside its call until another run queues for the key.
        first = submit(out, "first", waiters=1)
        wait_for(lambda: holds(first), timeout=30, what="the first run to hold", logs=logs)
        others = [submit(out, f"r{n}") for n in range(5)]
        wait_for(ended(first, *others), timeout=90, what="every run to end", logs=logs)
    statuses = set(Run.objects.values_list("status", flat=True))
    assert statuses == {RunStatus.SUCCEEDED}, list(Run.objects.values_list("stop_reason"))
    lines = spans(out)
    assert len(lines) == 12
    for start, end in zip(lines[::2], lines[1::2], strict=True):
        assert start.startswith("start:") and end == "end:" + start[6:], lines
    assert lines[:2] == ["start:first", "end:first"]
    waits = TranscriptEvent.objects.filter(kind="step.lock_waiting", payload__held_by_run=first.pk)
    assert waits.exists()
    assert not ResourceLock.objects.exists()


def test_a_worker_killed_holding_a_lock_does_not_keep_it_after_the_takeover(
    deploy: None, tmp_path: Path
) -> None:
    out = tmp_path / "spans.txt"
    env = child_env(tmp_path, PLANNERWEB_LOCK_POLL_SECONDS="0.05")
    with processes(db_worker("victim"), env=env, logs=tmp_path / "victim") as (victim,):
        # It waits for 99 lock waiters: it is inside its call, holding the key, when killed.
        held = submit(out, "held", waiters=99)
        wait_for(lambda: holds(held), timeout=30, what="the victim to hold the lock")
        with processes(db_worker("survivor"), env=env, logs=tmp_path / "survivor"):
            second = submit(out, "second")
            # Either worker may take it: wait until its step has said whom it waits for.
            wait_for(lambda: said_waiting(second), timeout=30, what="the second run to queue")
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(10)
            wait_for(ended(held, second), timeout=60, what="both runs to end")
    held.refresh_from_db()
    second.refresh_from_db()
    # The step had started a tool that is not idempotent: a reviewer must look at it.
    assert held.status == RunStatus.ESCALATED, held.stop_reason
    assert second.status == RunStatus.SUCCEEDED, second.stop_reason
    assert spans(out) == ["start:held", "start:second", "end:second"]
    wait = TranscriptEvent.objects.filter(run=second, kind="step.lock_waiting").first()
    assert wait is not None and wait.payload["held_by_run"] == held.pk
    assert not ResourceLock.objects.exists()

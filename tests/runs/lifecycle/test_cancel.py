"""Stopping running steps: a timeout or a cancel (in-process or from elsewhere) kills their processes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reviews.models import AuditEntry, ReviewItem
from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_execute
from runs.lifecycle.errors import RunError
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step, Tool
from tests.runs import toolbox
from tests.runs.lifecycle.test_resume import escalated_run

pytestmark = pytest.mark.django_db(transaction=True)


# A child shell that starts a grandchild and records both pids, then waits forever.
SLEEPER = 'sleep 60 & echo $$ $! > "$1"; wait'


def pids_in(path: Path) -> list[int]:
    for _ in range(200):
        if path.exists() and len(path.read_text().split()) == 2:
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.01)
    raise AssertionError("the tool never started")


def gone(pid: int) -> bool:
    for _ in range(300):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.01)
    return False


@pytest.fixture
def sleeper(make_tool: Callable[..., Tool]) -> Tool:
    return make_tool(
        "sleeper",
        "",
        kind=Tool.Kind.SHELL,
        config={"argv": ["/bin/sh", "-c", SLEEPER, "sh", "{pidfile}"]},
        parameters_schema={
            "type": "object",
            "properties": {"pidfile": {"type": "string"}},
            "required": ["pidfile"],
        },
        timeout_seconds=30,
    )


def submit(document: Any) -> Run:
    run = run_submit_plan(title="t", document=document, submitted_by=None)
    assert run.status == RunStatus.QUEUED, run.stop_reason
    return run


def in_thread(run: Run) -> threading.Thread:
    def work() -> None:
        from django.db import connection

        try:
            run_execute(run_id=run.pk)
        finally:
            connection.close()  # a worker thread's connection must not outlive it

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_a_step_that_times_out_fails_and_its_processes_are_killed(
    sleeper: Tool, fast_settings: Any, tmp_path: Path
) -> None:
    sleeper.timeout_seconds = 0.5
    sleeper.save()
    pidfile = tmp_path / "pids"
    run = submit(
        {"steps": [{"id": "slow", "action": "sleeper", "params": {"pidfile": str(pidfile)}}]}
    )
    started = time.monotonic()
    run_execute(run_id=run.pk)
    assert time.monotonic() - started < 10
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "timed out after 0.5s" in run.stop_reason
    shell, grandchild = pids_in(pidfile)
    assert gone(shell) and gone(grandchild)


def test_cancelling_a_running_run_kills_its_steps_and_cancels_the_rest(
    sleeper: Tool, toolset: None, fast_settings: Any, tmp_path: Path, operator: User, key: str
) -> None:
    pidfile = tmp_path / "pids"
    run = submit(
        {
            "steps": [
                {"id": "slow", "action": "sleeper", "params": {"pidfile": str(pidfile)}},
                {
                    "id": "after",
                    "action": "record",
                    "params": {"key": key, "label": "after"},
                    "depends_on": ["slow"],
                },
            ]
        }
    )
    thread = in_thread(run)
    shell, grandchild = pids_in(pidfile)
    run_cancel(run_id=run.pk, user=operator)
    thread.join(timeout=15)
    assert not thread.is_alive()
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.stop_reason == "cancelled by olivia"
    assert dict(Step.objects.filter(run=run).values_list("key", "status")) == {
        "slow": "cancelled",
        "after": "cancelled",
    }
    assert gone(shell) and gone(grandchild)
    assert toolbox.CALLS[key] == []


def test_a_cancel_recorded_by_another_process_is_noticed_on_the_heartbeat(
    sleeper: Tool, fast_settings: Any, tmp_path: Path
) -> None:
    pidfile = tmp_path / "pids"
    run = submit(
        {"steps": [{"id": "slow", "action": "sleeper", "params": {"pidfile": str(pidfile)}}]}
    )
    thread = in_thread(run)
    shell, _ = pids_in(pidfile)
    # What another process's run_cancel leaves behind: the request row, no in-process signal.
    Run.objects.filter(pk=run.pk).update(cancel_requested_at=timezone.now())
    thread.join(timeout=15)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert gone(shell)


def test_cancelling_a_queued_run_ends_it_at_once(toolset: None, operator: User, key: str) -> None:
    run = submit({"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]})
    run_cancel(run_id=run.pk, user=operator)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert Step.objects.get(run=run).status == "cancelled"
    assert run_execute(run_id=run.pk) == RunStatus.CANCELLED
    assert toolbox.CALLS[key] == []


def undoable(key: str, pidfile: Path) -> dict[str, Any]:
    """a (with its own undo) → slow (a sleeper); read (a read-only tool) beside them."""
    return {
        "steps": [
            {
                "id": "a",
                "action": "record",
                "params": {"key": key, "label": "a"},
                "undo": {"action": "record", "params": {"key": key, "label": "undo-a"}},
            },
            {"id": "read", "action": "reader", "params": {"key": key, "label": "read"}},
            {
                "id": "slow",
                "action": "sleeper",
                "params": {"pidfile": str(pidfile)},
                "depends_on": ["a", "read"],
            },
        ],
        "rollback": [{"action": "record", "params": {"key": key, "label": "notify"}}],
    }


@pytest.fixture
def reader(make_tool: Callable[..., Tool]) -> Tool:
    return make_tool("reader", "record", read_only=True)


def test_cancel_and_roll_back_of_a_running_run_undoes_what_succeeded(
    sleeper: Tool,
    reader: Tool,
    toolset: None,
    fast_settings: Any,
    tmp_path: Path,
    operator: User,
    key: str,
) -> None:
    pidfile = tmp_path / "pids"
    run = submit(undoable(key, pidfile))
    thread = in_thread(run)
    shell, grandchild = pids_in(pidfile)
    run_cancel(run_id=run.pk, user=operator, rollback=True, reason="wrong build")
    thread.join(timeout=15)
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK, run.stop_reason
    assert run.stop_reason.startswith("cancelled by olivia: wrong build; rolled back")
    assert (run.cancel_rollback, run.cancel_reason) == (True, "wrong build")
    assert dict(Step.objects.filter(run=run).values_list("key", "status")) == {
        "a": "rolled_back",
        "read": "succeeded",  # read-only: nothing to undo
        "slow": "cancelled",
        "undo-a": "succeeded",
        "rollback-1": "succeeded",
    }
    assert toolbox.CALLS[key] == ["a", "read", "undo-a", "notify"] or toolbox.CALLS[key] == [
        "read",
        "a",
        "undo-a",
        "notify",
    ]
    assert gone(shell) and gone(grandchild)


def test_cancel_and_roll_back_recorded_by_another_process_is_noticed_on_the_heartbeat(
    sleeper: Tool, reader: Tool, toolset: None, fast_settings: Any, tmp_path: Path, key: str
) -> None:
    pidfile = tmp_path / "pids"
    run = submit(undoable(key, pidfile))
    thread = in_thread(run)
    pids_in(pidfile)
    # What another process's run_cancel leaves behind: the request row, no in-process signal.
    Run.objects.filter(pk=run.pk).update(
        cancel_requested_at=timezone.now(), cancel_rollback=True, cancel_reason="elsewhere"
    )
    thread.join(timeout=15)
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLED_BACK, run.stop_reason
    assert "undo-a" in toolbox.CALLS[key]
    assert Step.objects.get(run=run, key="a").status == "rolled_back"


def test_cancel_and_roll_back_of_an_idle_run_is_done_by_a_worker(
    reader: Tool, toolset: None, fast_settings: Any, operator: User, key: str
) -> None:
    doc = {
        "steps": [
            {
                "id": "a",
                "action": "record",
                "params": {"key": key, "label": "a"},
                "undo": {"action": "record", "params": {"key": key, "label": "undo-a"}},
            },
            {"id": "b", "action": "record", "params": {"key": key, "label": "b"}},
        ]
    }
    run = submit(doc)
    # Parked with a finished: what a run waiting for a reviewer's gate decision looks like.
    Step.objects.filter(run=run, key="a").update(status="succeeded", result={"ok": 1})
    Run.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL)
    run_cancel(run_id=run.pk, user=operator, rollback=True, reason="not today")
    run.refresh_from_db()
    assert run.status == RunStatus.ROLLING_BACK and run.lease_owner == ""
    assert Step.objects.get(run=run, key="b").status == "cancelled"
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    run.refresh_from_db()
    assert run.stop_reason.startswith("cancelled by olivia: not today; rolled back")
    assert toolbox.CALLS[key] == ["undo-a"]


def test_cancel_and_roll_back_with_nothing_done_just_cancels(
    toolset: None, operator: User, key: str
) -> None:
    run = submit({"steps": [{"id": "a", "action": "record", "params": {"key": key, "label": "a"}}]})
    run_cancel(run_id=run.pk, user=operator, rollback=True)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.stop_reason == "cancelled by olivia; nothing to roll back"


def test_cancel_and_roll_back_of_an_escalated_run_closes_its_item_and_rolls_back(
    toolset: None, fast_settings: Any, make_tool: Callable[..., Tool], operator: User, key: str
) -> None:
    make_tool("picky", "flaky", checks=[{"type": "range", "path": "attempt", "min": 2}])
    run = escalated_run(key, rollback=True)
    item = ReviewItem.objects.get(run=run, kind="escalation")
    with pytest.raises(RunError, match="already ended"):
        run_cancel(run_id=run.pk, user=operator)  # a plain cancel: an escalated run has ended
    run_cancel(run_id=run.pk, user=operator, rollback=True, reason="give up")
    item.refresh_from_db()
    assert (item.status, item.decision) == ("expired", "run_cancelled")
    assert AuditEntry.objects.filter(item_id=item.pk, action="review.expired").exists()
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    run.refresh_from_db()
    assert run.stop_reason.startswith("cancelled by olivia: give up; rolled back")
    assert Step.objects.get(plan_id=run.current_plan_id, key="a").status == "rolled_back"
    assert toolbox.CALLS[key][-1] == "undo"

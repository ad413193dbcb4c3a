"""Executor pools with real processes: ``db_worker --queue NAME`` workers on PostgreSQL."""

from __future__ import annotations

import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from reviews.models import EscalationCause, ReviewItem
from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.submit import run_submit_plan
from runs.models import RemoteStep, Run, Step, Tool
from runs.statemachine import RUN_TERMINAL
from runs.tasks import execute_run
from tests.runs.processes import child_env, db_worker, processes, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),  # several worker processes start, on a shared machine
]

APPEND = {"type": "object", "properties": {"path": {}, "line": {}, "seconds": {}}}


@pytest.fixture
def tools() -> None:
    for name, queue, idempotent in (
        ("local_append", "", False),
        ("sql_append", "sql", False),
        ("sql_append_idem", "sql", True),
        ("email_append", "email", False),
        ("gpu_append", "gpu", False),
    ):
        Tool.objects.create(
            name=name,
            kind=Tool.Kind.PYTHON,
            config={"callable": "tests.runs.toolbox.append_line"},
            parameters_schema=APPEND,
            timeout_seconds=30,
            idempotent=idempotent,
            max_retries=2,
            queue=queue,
        )


def pool_worker(worker_id: str, queues: str) -> list[str]:
    return [*db_worker(worker_id), "--queue", queues]


def env(tmp_path: Path) -> dict[str, str]:
    return child_env(tmp_path, PLANNERWEB_POOL_POLL_SECONDS="0.05")


def submit(steps: list[dict[str, Any]]) -> Run:
    run = run_submit_plan(
        title="pools", document={"steps": steps}, submitted_by=None, max_parallel=4
    )
    assert run.status == "queued", run.stop_reason
    return run


def step(key: str, tool: str, out: Path, tag: str, *deps: str, seconds: float = 0.01) -> dict:
    params = {"path": str(out), "line": f"{tag}:{key}", "seconds": seconds}
    return {"id": key, "action": tool, "params": params, "depends_on": list(deps)}


def lines(out: Path) -> Counter[str]:
    return Counter(out.read_text().split()) if out.exists() else Counter()


def ended(run: Run) -> bool:
    return Run.objects.filter(pk=run.pk, status__in=RUN_TERMINAL).exists()


def test_steps_land_only_on_the_workers_of_their_queue_across_two_pools(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "side-effects.txt"
    runs = [
        submit(
            [
                step("a", "sql_append", out, f"r{i}"),
                step("b", "email_append", out, f"r{i}", "a"),
                step("c", "local_append", out, f"r{i}", "a"),
                step("d", "sql_append", out, f"r{i}", "b", "c"),
            ]
        )
        for i in range(6)
    ]
    for run in runs:
        execute_run.enqueue(run.pk)
    sql = {"sql-1", "sql-2"}
    with processes(
        db_worker("owner-1"),
        db_worker("owner-2"),
        pool_worker("sql-1", "sql"),
        pool_worker("sql-2", "sql"),
        pool_worker("email-1", "email"),
        env=env(tmp_path),
        logs=tmp_path / "logs",
    ):
        wait_for(
            lambda: all(ended(r) for r in runs), timeout=180, what="runs", logs=tmp_path / "logs"
        )
    assert set(
        Run.objects.filter(pk__in=[r.pk for r in runs]).values_list("status", flat=True)
    ) == {"succeeded"}
    by_queue: dict[str, set[str]] = {}
    for queue, worker in RemoteStep.objects.values_list("queue", "worker_id"):
        by_queue.setdefault(queue, set()).add(worker)
    assert by_queue["sql"] <= sql and by_queue["email"] == {"email-1"}
    assert RemoteStep.objects.filter(queue="sql").count() == 12
    # The owners' own steps never went to a pool; every side effect happened once.
    assert not RemoteStep.objects.filter(step__tool_name="local_append").exists()
    assert set(lines(out).values()) == {1} and len(lines(out)) == 24


def test_a_pool_worker_killed_mid_step_escalates_its_step_or_reruns_an_idempotent_one(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "side-effects.txt"
    once = submit([step("a", "sql_append", out, "once", seconds=30)])
    again = submit([step("a", "sql_append_idem", out, "again", seconds=3)])
    for run in (once, again):
        execute_run.enqueue(run.pk)
    logs = tmp_path / "logs"
    with processes(
        db_worker("owner"), pool_worker("sql-doomed", "sql"), env=env(tmp_path), logs=logs
    ) as procs:
        wait_for(
            lambda: (
                RemoteStep.objects.filter(status="running", worker_id="sql-doomed").count() == 2
            ),
            timeout=120,
            what="both steps on the doomed worker",
            logs=logs,
        )
        os.kill(procs[1].pid, signal.SIGKILL)
        procs[1].wait(10)
        with processes(pool_worker("sql-spare", "sql"), env=env(tmp_path), logs=tmp_path / "l2"):
            wait_for(lambda: ended(once) and ended(again), timeout=180, what="runs", logs=logs)
    once.refresh_from_db()
    again.refresh_from_db()
    assert once.status == "escalated"
    assert ReviewItem.objects.get(run=once).cause == EscalationCause.PARTIAL_RUN
    assert "sql-doomed stopped while it was running" in Step.objects.get(run=once).error
    assert again.status == "succeeded"
    row = RemoteStep.objects.get(run=again)
    assert (row.worker_id, row.attempt) == ("sql-spare", 2)
    assert lines(out) == Counter({"again:a": 1})


def test_a_step_whose_queue_has_no_worker_says_so_and_its_run_cancels(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "side-effects.txt"
    run = submit([step("a", "gpu_append", out, "gpu"), step("b", "local_append", out, "own")])
    execute_run.enqueue(run.pk)
    admin = User.objects.create_user("ada", password="pw", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    logs = tmp_path / "logs"
    with processes(db_worker("owner"), pool_worker("sql-1", "sql"), env=env(tmp_path), logs=logs):
        wait_for(
            lambda: (
                RemoteStep.objects.filter(run=run, status="pending").exists()
                and Step.objects.filter(run=run, key="b", status="succeeded").exists()
            ),
            timeout=120,
            what="the gpu step waiting",
            logs=logs,
        )
        wait_for(
            lambda: any(
                q["name"] == "sql" and q["workers"] for q in client.get("/api/queues").json()
            ),
            timeout=30,
            what="the sql worker's heartbeat",
        )
        queues = {q["name"]: q for q in client.get("/api/queues").json()}
        assert queues["gpu"]["pending"] == 1 and queues["gpu"]["unserved"] is True
        assert queues["sql"]["workers"] == ["sql-1"]
        steps = {s["key"]: s for s in client.get(f"/api/runs/{run.pk}/steps").json()}
        assert steps["a"]["pool"]["message"] == (
            "waiting for a worker on queue gpu (no live worker serves it)"
        )
        page = client.get(f"/runs/{run.pk}/").content.decode()
        assert "waiting for a worker on queue gpu (no live worker serves it)" in page
        overview = client.get("/overview/").content.decode()
        assert "no live worker serves this queue" in overview
        run_cancel(run_id=run.pk, user=admin, reason="no gpu")
        wait_for(lambda: ended(run), timeout=30, what="the cancel", logs=logs)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert RemoteStep.objects.get(run=run).status == "cancelled"
    assert lines(out) == Counter({"own:b": 1})


def test_a_run_whose_owner_is_killed_takes_up_the_step_its_pool_worker_ran(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "side-effects.txt"
    run = submit(
        [
            step("a", "sql_append", out, "takeover", seconds=3),
            step("b", "local_append", out, "takeover", "a"),
        ]
    )
    execute_run.enqueue(run.pk)
    logs = tmp_path / "logs"
    with processes(
        db_worker("owner-doomed"), pool_worker("sql-1", "sql"), env=env(tmp_path), logs=logs
    ) as procs:
        wait_for(
            lambda: RemoteStep.objects.filter(run=run, status="running").exists(),
            timeout=120,
            what="the step on the pool worker",
            logs=logs,
        )
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait(10)
        with processes(db_worker("owner-2"), env=env(tmp_path), logs=tmp_path / "l2"):
            wait_for(lambda: ended(run), timeout=180, what="the run", logs=logs)
    run.refresh_from_db()
    assert run.status == "succeeded", run.stop_reason
    row = RemoteStep.objects.get(run=run)
    assert (row.worker_id, row.attempt, row.status) == ("sql-1", 1, "succeeded")
    # The pool worker's call counted once, and the step after it ran on the new owner.
    assert lines(out) == Counter({"takeover:a": 1, "takeover:b": 1})

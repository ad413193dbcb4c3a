"""A real worker process SIGKILLed in the middle of a step, and the worker that takes its run over.

The shell tool records each call's idempotency key and process id, then blocks
(on its first call) in a child process of its own, as a deploy script would.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from runs.execution.commit_policy import ANNOUNCE_STARTS, HOLD_ROWS
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step, Tool, TranscriptEvent
from tests.runs.processes import child_env, db_worker, processes, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# First call: block in a background child until the worker dies; a later call finishes.
DEPLOY = (
    'echo "$PLANNERWEB_IDEMPOTENCY_KEY $$" >> calls.txt; '
    "if [ ! -e released ]; then sleep 60 & echo $! > sleep.pid; wait; fi; echo deployed"
)


def running(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie waiting for a lazy reaper counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def deploy_tool(*, honours: bool) -> Tool:
    return Tool.objects.create(
        name="deploy",
        kind=Tool.Kind.SHELL,
        config={"shell": DEPLOY},
        parameters_schema={"type": "object"},
        timeout_seconds=120,
        idempotent=False,
        honours_idempotency_key=honours,
    )


def calls(sandbox: Path) -> list[list[str]]:
    path = sandbox / "calls.txt"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def kill_mid_step(tmp_path: Path, env: dict[str, str], run: Run) -> tuple[list[int], str]:
    """Run ``run`` on a worker, SIGKILL it inside the deploy; (its tool's pids, the step's key)."""
    sandbox, logs = tmp_path / "sandbox", tmp_path / "logs"
    with processes(db_worker("victim"), env=env, logs=logs / "victim") as (victim,):
        wait_for(
            lambda: (sandbox / "sleep.pid").exists() and bool(calls(sandbox)),
            timeout=60,
            what="the deploy to start",
            logs=logs / "victim",
        )
        pids = [int(calls(sandbox)[0][1]), int((sandbox / "sleep.pid").read_text())]
        assert all(running(p) for p in pids)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
    step = Step.objects.get(run=run, key="deploy")
    assert step.status == "running"
    return pids, str(step.idempotency_key)


def ended(run: Run) -> bool:
    run.refresh_from_db()
    return run.status not in (RunStatus.QUEUED, RunStatus.EXECUTING)


def test_an_honouring_step_caught_by_a_crash_runs_again_with_its_key_and_no_orphan(
    tmp_path: Path,
) -> None:
    deploy_tool(honours=True)
    env = child_env(tmp_path)
    plan = {"steps": [{"id": "deploy", "action": "deploy"}]}
    run = run_submit_plan(title="deploy", document=plan, submitted_by=None)
    pids, key = kill_mid_step(tmp_path, env, run)

    # No tool process of the dead worker survives it (the supervisor ended the group).
    deadline = time.monotonic() + 10
    while any(running(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if running(p)] == []

    sandbox = tmp_path / "sandbox"
    (sandbox / "released").touch()
    logs = tmp_path / "logs" / "survivor"
    with processes(db_worker("survivor"), env=env, logs=logs):
        wait_for(lambda: ended(run), timeout=60, what="the takeover to finish", logs=logs)
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    # Called twice, each time with the step's one key: the service can tell a repeat.
    assert [c[0] for c in calls(sandbox)] == [key, key]
    requeued = TranscriptEvent.objects.filter(
        run=run, kind="step.status", payload__to_status="pending"
    )
    assert any("honours the step's idempotency key" in e.payload["reason"] for e in requeued)


def test_a_step_whose_tool_does_not_honour_keys_escalates_and_is_not_called_again(
    tmp_path: Path,
) -> None:
    deploy_tool(honours=False)
    env = child_env(tmp_path)
    run = run_submit_plan(
        title="deploy",
        document={"steps": [{"id": "deploy", "action": "deploy"}]},
        submitted_by=None,
    )
    pids, key = kill_mid_step(tmp_path, env, run)
    (tmp_path / "sandbox" / "released").touch()
    logs = tmp_path / "logs" / "survivor"
    with processes(db_worker("survivor"), env=env, logs=logs):
        wait_for(lambda: ended(run), timeout=60, what="the takeover to stop", logs=logs)
    assert run.status == RunStatus.ESCALATED
    assert run.stop_reason.startswith("step deploy may have partly run")
    assert [c[0] for c in calls(tmp_path / "sandbox")] == [key]
    assert [p for p in pids if running(p)] == []


def test_a_worker_killed_between_a_fan_outs_intent_and_its_rows_leaves_them_to_a_reviewer(
    tmp_path: Path, make_tool: Callable[..., Tool]
) -> None:
    fan = ANNOUNCE_STARTS
    make_tool("root", "echo", config={"callable": "runs.tools.builtin.echo"})
    make_tool("deploy_all", "kill_worker", idempotent=False)
    steps = [{"id": f"d{i}", "action": "deploy_all", "depends_on": ["root"]} for i in range(fan)]
    run = run_submit_plan(
        title="fan-out",
        document={"steps": [{"id": "root", "action": "root"}, *steps]},
        submitted_by=None,
        max_parallel=fan,
    )
    env, logs = child_env(tmp_path), tmp_path / "logs"
    with processes(db_worker("victim"), env=env, logs=logs / "victim") as (victim,):
        assert victim.wait(60) == -signal.SIGKILL  # the first deploy it called killed it
    run.refresh_from_db()
    ids = sorted(Step.objects.filter(run=run, key__startswith="d").values_list("pk", flat=True))
    # What it left: the root's finish and the intent, durable; the fan-out's rows, not yet.
    assert sorted(run.starting) == ids
    assert Step.objects.get(run=run, key="root").status == "succeeded"
    assert set(Step.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"pending"}

    with processes(db_worker("survivor"), env=env, logs=logs / "survivor"):
        wait_for(lambda: ended(run), timeout=60, what="the takeover", logs=logs / "survivor")
    # The survivor took them as started (they were), and called none again.
    assert run.status == RunStatus.ESCALATED
    assert run.stop_reason.startswith("step d0 may have partly run"), run.stop_reason
    assert set(Step.objects.filter(pk__in=ids).values_list("status", flat=True)) == {"running"}
    assert run.starting == []


@pytest.mark.postgres
def test_a_worker_killed_after_a_held_fan_in_leaves_its_finishes_to_the_takeover(
    tmp_path: Path, make_tool: Callable[..., Tool]
) -> None:
    fan = HOLD_ROWS
    make_tool("root", "echo", config={"callable": "runs.tools.builtin.echo"})
    make_tool("deploy_one", "meet", idempotent=False)  # the deploys finish together
    make_tool("announce", "kill_worker", idempotent=False)
    steps = [
        {
            "id": f"d{i}",
            "action": "deploy_one",
            "params": {"key": str(tmp_path), "label": f"d{i}", "parties": fan},
            "depends_on": ["root"],
        }
        for i in range(fan)
    ]
    sink = {"id": "announce", "action": "announce", "depends_on": [s["id"] for s in steps]}
    run = run_submit_plan(
        title="fan-in",
        document={"steps": [{"id": "root", "action": "root"}, *steps, sink]},
        submitted_by=None,
        max_parallel=fan,
    )
    env, logs = child_env(tmp_path), tmp_path / "logs"
    with processes(db_worker("victim"), env=env, logs=logs / "victim") as (victim,):
        assert victim.wait(60) == -signal.SIGKILL  # the sink's tool killed it
    run.refresh_from_db()
    deploys = Step.objects.filter(run=run, key__startswith="d")
    # What it left: the fan-in held, durable; the deploys' finishes not yet in their rows.
    assert run.held != ""
    assert "succeeded" not in set(deploys.values_list("status", flat=True))
    assert Step.objects.get(run=run, key="announce").status == "pending"

    with processes(db_worker("survivor"), env=env, logs=logs / "survivor"):
        wait_for(lambda: ended(run), timeout=60, what="the takeover", logs=logs / "survivor")
    # The survivor applied it first: every deploy succeeded with its result, and the sink,
    # started, is left to a reviewer (its tool, called again, would have killed the survivor).
    assert run.status == RunStatus.ESCALATED
    assert run.stop_reason.startswith("step announce may have partly run"), run.stop_reason
    assert {(s.status, s.attempts) for s in deploys} == {("succeeded", 1)}
    assert sorted(s.result["label"] for s in deploys) == sorted(f"d{i}" for i in range(fan))
    assert Step.objects.get(run=run, key="announce").status == "running"
    assert run.held == ""
    events = TranscriptEvent.objects.filter(run=run, kind="step.status").order_by("seq")
    order = [(e.payload["step"], e.payload["to_status"]) for e in events]
    sink_started = order.index(("announce", "running"))
    assert all(order.index((f"d{i}", "succeeded")) < sink_started for i in range(fan))

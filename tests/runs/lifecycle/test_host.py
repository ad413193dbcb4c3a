"""One worker executing many runs at once (runs/lifecycle/host.py): in-process on any database."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.worker import RunWorker
from runs.models import Run, RunStatus, Step, Tool
from tests.runs import toolbox
from tests.runs.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def host_tools(make_tool: Callable[..., Tool]) -> None:
    make_tool("rendezvous", "rendezvous")
    make_tool("probe", "overlap_probe")
    make_tool("spin", "spin", timeout_seconds=30)


def step(key: str, sid: str, action: str, *deps: str, **params: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "action": action,
        "params": {"key": key, "label": sid, **params},
        "depends_on": list(deps),
    }


def submit(document: dict[str, Any], **fields: Any) -> Run:
    run = run_submit_plan(title="hosted", document=document, submitted_by=None, **fields)
    assert run.status == RunStatus.QUEUED, run.stop_reason
    return run


def work(concurrency: int) -> None:
    """One worker, hosting up to ``concurrency`` runs, until the queue is empty and its runs stopped."""
    try:
        RunWorker(worker_id="host", batch=True, recovery_seconds=0, concurrency=concurrency).run()
    finally:
        connection.close()


def statuses(runs: list[Run]) -> list[str]:
    """The runs' statuses in order; a failed one with its reason, to say why."""
    rows = Run.objects.filter(pk__in=[r.pk for r in runs]).order_by("pk")
    return [
        f"{status}: {reason}" if status == RunStatus.FAILED else status
        for status, reason in rows.values_list("status", "stop_reason")
    ]


def test_one_worker_holds_thirty_runs_at_once(
    fast_settings: Any, host_tools: None, key: str
) -> None:
    # Each run's only step returns once all thirty are inside it at the same time:
    # only a worker executing the thirty runs together can finish any of them.
    meet = {"action": "rendezvous", "params": {"key": key, "group": "all", "parties": 30}}
    runs = [
        submit({"steps": [{"id": "meet", **meet, "params": {**meet["params"], "label": f"r{n}"}}]})
        for n in range(30)
    ]
    work(concurrency=30)
    assert statuses(runs) == [RunStatus.SUCCEEDED] * 30
    assert sorted(c for c in toolbox.CALLS[key] if c.startswith("end:")) == sorted(
        f"end:r{n}" for n in range(30)
    )


def test_a_runs_fan_out_gets_no_more_than_the_workers_step_limit(
    fast_settings: Any, host_tools: None, key: str
) -> None:
    fast_settings.PLANNERWEB_WORKER_MAX_STEPS = 4
    wide = {"steps": [step(key, f"p{i}", "probe", seconds=0.05) for i in range(12)]}
    run = submit(wide, max_parallel=12)
    work(concurrency=5)
    assert statuses([run]) == [RunStatus.SUCCEEDED]
    assert toolbox.MOST_INSIDE[key] == 4


def test_a_cpu_bound_python_tool_does_not_hold_up_other_runs(
    fast_settings: Any, host_tools: None, key: str
) -> None:
    busy = submit({"steps": [step(key, "spin", "spin", seconds=4.0)]})
    chain = [step(key, "c0", "probe", seconds=0.05)]
    chain += [step(key, f"c{i}", "probe", f"c{i - 1}", seconds=0.05) for i in range(1, 5)]
    quick = submit({"steps": chain})
    work(concurrency=2)
    assert statuses([busy, quick]) == [RunStatus.SUCCEEDED] * 2
    # The five quick steps all ended while the CPU-bound step was still computing.
    spin_done = Step.objects.get(run=busy, key="spin").finished_at
    quick_done = Step.objects.get(run=quick, key="c4").finished_at
    assert quick_done is not None and spin_done is not None and quick_done < spin_done
    assert toolbox.CALLS[key][:5] == ["c0", "c1", "c2", "c3", "c4"]


def test_cancelling_one_run_among_many_stops_only_that_one(
    fast_settings: Any, host_tools: None, key: str
) -> None:
    runs = [submit({"steps": [step(f"{key}-{n}", "wait", "probe", seconds=1.5)]}) for n in range(8)]
    worker = threading.Thread(target=work, args=(8,))
    worker.start()
    try:
        target = runs[3]
        wait_for(
            lambda: Step.objects.filter(run=target, status="running").exists(),
            timeout=20,
            what="the run to be executing its step",
        )
        run_cancel(run_id=target.pk, user=None, reason="not this one")
    finally:
        worker.join(60)
    assert not worker.is_alive()
    assert (
        statuses(runs)
        == [RunStatus.SUCCEEDED] * 3 + [RunStatus.CANCELLED] + [RunStatus.SUCCEEDED] * 4
    )
    assert Step.objects.get(run=runs[3]).status == "cancelled"


def test_a_stop_signal_lets_the_runs_held_finish_then_the_worker_returns(
    fast_settings: Any, host_tools: None, key: str
) -> None:
    runs = [submit({"steps": [step(f"{key}-{n}", "wait", "probe", seconds=1.0)]}) for n in range(3)]
    worker = RunWorker(worker_id="draining", recovery_seconds=0, concurrency=3, interval=0.1)

    def serve() -> None:
        try:
            worker.run()
        finally:
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        wait_for(
            lambda: Step.objects.filter(run__in=runs, status="running").count() == 3,
            timeout=20,
            what="the three runs to be executing",
        )
        worker.shutdown(signal.SIGTERM, None)  # as the signal handler would
        later = submit({"steps": [step(key, "later", "probe", seconds=0.01)]})
    finally:
        thread.join(60)
    assert not thread.is_alive()
    assert statuses(runs) == [RunStatus.SUCCEEDED] * 3
    # Taken no more after the signal: the later run waits for another worker.
    assert statuses([later]) == [RunStatus.QUEUED]

"""The scale-out deployment with real processes: db_worker processes, Daphne, PostgreSQL, Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import websockets
from django.contrib.auth.models import User
from django.test import Client
from django_tasks_db.models import DBTaskResult

from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step, Tool, TranscriptEvent
from runs.statemachine import RUN_TERMINAL
from runs.tasks import execute_run
from tests.runs.processes import (
    child_env,
    daphne,
    db_worker,
    free_port,
    port_open,
    processes,
    wait_for,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

APPEND = {"type": "object", "properties": {"path": {}, "line": {}, "seconds": {}}}


@pytest.fixture
def tools() -> None:
    for name, idempotent in (("append", False), ("append_idem", True)):
        Tool.objects.create(
            name=name,
            kind=Tool.Kind.PYTHON,
            config={"callable": "tests.runs.toolbox.append_line"},
            parameters_schema=APPEND,
            timeout_seconds=30,
            idempotent=idempotent,
            max_retries=2,
        )


def diamond(out: Path, tag: str, seconds: float = 0.01, tool: str = "append") -> dict[str, Any]:
    def step(key: str, *deps: str) -> dict[str, Any]:
        params = {"path": str(out), "line": f"{tag}:{key}", "seconds": seconds}
        return {"id": key, "action": tool, "params": params, "depends_on": list(deps)}

    return {"steps": [step("a"), step("b", "a"), step("c", "a"), step("d", "b", "c")]}


def lines(out: Path) -> Counter[str]:
    return Counter(out.read_text().split()) if out.exists() else Counter()


def all_ended(ids: list[int]) -> bool:
    return Run.objects.filter(pk__in=ids, status__in=RUN_TERMINAL).count() == len(ids)


def assert_transcripts_gap_free(ids: list[int]) -> None:
    for run_id in ids:
        seqs = list(
            TranscriptEvent.objects.filter(run_id=run_id)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        assert seqs == list(range(1, len(seqs) + 1)), f"run {run_id}: {seqs}"


def test_fifty_plans_on_three_workers_each_side_effect_happens_exactly_once(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "effects.txt"
    env = child_env(tmp_path)
    logs = tmp_path / "logs"
    with processes(*(db_worker(f"w{i}") for i in range(3)), env=env, logs=logs):
        ids = [
            run_submit_plan(title=f"plan {n}", document=diamond(out, f"r{n}"), submitted_by=None).pk
            for n in range(50)
        ]
        # A second task for every run: two workers race for each run; one advances it.
        for run_id in ids:
            execute_run.enqueue(run_id)
        wait_for(lambda: all_ended(ids), timeout=120, what="50 runs to end", logs=logs)
    statuses = Counter(Run.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {RunStatus.SUCCEEDED: 50}
    assert lines(out) == Counter({f"r{n}:{k}": 1 for n in range(50) for k in "abcd"})
    assert_transcripts_gap_free(ids)
    # Every run was started by exactly one worker ("claimed by" once), and the work was spread.
    for run_id in ids:
        claims = TranscriptEvent.objects.filter(
            run_id=run_id, kind="run.status", payload__to_status="executing"
        )
        assert claims.count() == 1
    workers = {
        w for ids_ in DBTaskResult.objects.values_list("worker_ids", flat=True) for w in ids_
    }
    assert len(workers) >= 2, workers


def test_a_worker_killed_mid_run_loses_nothing_and_reruns_no_finished_step(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "effects.txt"
    env = child_env(tmp_path)
    logs = tmp_path / "logs"
    # The victim starts alone, so that it holds runs when it dies; the survivor comes after.
    with processes(db_worker("victim"), env=env, logs=logs) as procs:
        ids = [
            run_submit_plan(
                title=f"plan {n}",
                document=diamond(
                    out, f"r{n}", seconds=0.4, tool="append_idem" if n % 2 else "append"
                ),
                submitted_by=None,
            ).pk
            for n in range(8)
        ]

        def victim_mid_step() -> bool:
            return Step.objects.filter(
                run__lease_owner__contains=f":{procs[0].pid}/", status="running"
            ).exists()

        wait_for(victim_mid_step, timeout=30, what="the victim to be running a step", logs=logs)
        with processes(db_worker("survivor"), env=env, logs=logs / "survivor"):
            os.kill(procs[0].pid, signal.SIGKILL)
            procs[0].wait(10)
            finished_at_kill = set(
                Step.objects.filter(run_id__in=ids, status="succeeded").values_list("run_id", "key")
            )
            caught = list(
                Step.objects.filter(
                    run_id__in=ids, status="running", run__lease_owner__contains=f":{procs[0].pid}/"
                ).values_list("run_id", "key", "tool__idempotent")
            )
            assert caught, "the victim was not in the middle of a step when it died"
            wait_for(lambda: all_ended(ids), timeout=60, what="every run to end", logs=logs)

    assert_takeover_outcome(ids, lines(out), finished_at_kill, caught, keys="abcd")


def assert_takeover_outcome(
    ids: list[int],
    effects: Counter[str],
    finished_at_kill: set[tuple[int, str]],
    caught: list[tuple[int, str, bool]],
    *,
    keys: Iterable[str],
) -> None:
    """What a worker's death may leave: no finished step again, caught steps by their tool's kind.

    ``effects`` counts the ``r<n>:<key>`` lines the steps of run ``ids[n]`` wrote; ``caught``
    are the (run, step, idempotent) the dead worker was in the middle of.
    """
    tag = {run_id: f"r{n}" for n, run_id in enumerate(ids)}
    # No step that had finished before the kill ran again.
    for run_id, key in finished_at_kill:
        assert effects[f"{tag[run_id]}:{key}"] == 1, (run_id, key)
    runs = {r.pk: r for r in Run.objects.filter(pk__in=ids)}
    for run_id, key, idempotent in caught:
        run = runs[run_id]
        if idempotent:
            # Retried after the takeover: it ran once or twice, and the run went on.
            assert run.status == RunStatus.SUCCEEDED, run.stop_reason
            assert effects[f"{tag[run_id]}:{key}"] in (1, 2)
        else:
            assert run.status == RunStatus.ESCALATED
            assert run.stop_reason.startswith(f"step {key} may have partly run"), run.stop_reason
            assert effects[f"{tag[run_id]}:{key}"] <= 1
    caught_runs = {run_id for run_id, _, _ in caught}
    for run_id, run in runs.items():
        if run_id not in caught_runs:
            assert run.status == RunStatus.SUCCEEDED, run.stop_reason
            assert all(effects[f"{tag[run_id]}:{k}"] == 1 for k in keys)
        assert TranscriptEvent.objects.filter(run_id=run_id).count() > 0
    assert_transcripts_gap_free(ids)


def events_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The events in one websocket message: a lone event, or a batch of consecutive ones."""
    return message["events"] if message["type"] == "events" else [message]


def ended(message: dict[str, Any]) -> bool:
    return message["kind"] == "run.status" and message["payload"]["to_status"] in RUN_TERMINAL


def test_a_websocket_client_of_one_daphne_gets_events_written_by_a_worker_process(
    tools: None, tmp_path: Path, operator: User
) -> None:
    out = tmp_path / "effects.txt"
    port = free_port()
    env = child_env(tmp_path, REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    logs = tmp_path / "logs"
    client = Client()
    client.force_login(operator)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    with processes(daphne(port), env=env, logs=logs):
        wait_for(lambda: port_open(port), timeout=30, what="daphne to listen", logs=logs)
        run = run_submit_plan(
            title="live", document=diamond(out, "live", 0.05), submitted_by=operator
        )

        async def follow() -> list[dict[str, Any]]:
            received: list[dict[str, Any]] = []
            async with websockets.connect(
                f"ws://127.0.0.1:{port}/ws/runs/{run.pk}/?after=0",
                additional_headers={"Cookie": cookie},
                origin=f"http://127.0.0.1:{port}",
            ) as ws:
                # Connected before any worker exists: what follows can only come live,
                # from the worker process through Redis to this Daphne.
                async with asyncio.timeout(5):
                    while not received or received[-1]["seq"] < 2:
                        received += events_of(json.loads(await ws.recv()))
                with processes(db_worker("remote"), env=env, logs=logs / "worker"):
                    async with asyncio.timeout(60):
                        while not ended(received[-1]):
                            received += events_of(json.loads(await ws.recv()))
            return received

        received = asyncio.run(follow())
    seqs = [m["seq"] for m in received]
    assert seqs == list(range(1, len(seqs) + 1))  # every event, in order, once
    assert received[-1]["payload"]["to_status"] == RunStatus.SUCCEEDED
    stored = TranscriptEvent.objects.filter(run=run).count()
    assert len(received) == stored

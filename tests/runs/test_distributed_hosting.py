"""Worker processes that each hold many runs at once (runs/lifecycle/host.py), on PostgreSQL."""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from django.db import connection, transaction

from runs.lifecycle.host import connection_budget
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step
from tests.runs.processes import child_env, db_worker, processes, wait_for
from tests.runs.test_distributed import (
    all_ended,
    assert_takeover_outcome,
    assert_transcripts_gap_free,
    lines,
    tools,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

__all__ = ["tools"]  # the fixture, shared


def chain(out: Path, tag: str, *, seconds: float, tool: str = "append") -> dict[str, object]:
    steps = []
    for i in range(3):
        params = {"path": str(out), "line": f"{tag}:s{i}", "seconds": seconds}
        steps.append(
            {
                "id": f"s{i}",
                "action": tool,
                "params": params,
                "depends_on": [f"s{i - 1}"] if i else [],
            }
        )
    return {"steps": steps}


def most_runs_at_once(ids: list[int]) -> int:
    """The most runs that had a step running at the same instant (from the steps' stored times)."""
    edges: list[tuple[datetime, int]] = []
    for run_id in ids:
        times = Step.objects.filter(run_id=run_id).values_list("started_at", "finished_at")
        starts = [s for s, _ in times if s is not None]
        ends = [f for _, f in times if f is not None]
        edges += [(min(starts), 1), (max(ends), -1)]
    most = current = 0
    for _, change in sorted(edges, key=lambda e: (e[0], e[1])):
        current += change
        most = max(most, current)
    return most


class ConnectionSampler:
    """The most connections the test database had open, sampled while the workers run."""

    def __init__(self) -> None:
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        db = connection.settings_dict
        self._dsn = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/postgres"
        )
        self._name = db["NAME"]

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self._name,)
                ).fetchone()
                self.most = max(self.most, row[0] if row else 0)


def test_two_workers_hold_a_hundred_runs_at_once_each_side_effect_once(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "effects.txt"
    sizes = {"writers": 2, "prepare_threads": 2, "tool_threads": 4}
    env = child_env(
        tmp_path,
        PLANNERWEB_WORKER_CONCURRENCY="60",
        PLANNERWEB_WORKER_WRITERS=str(sizes["writers"]),
        PLANNERWEB_WORKER_PREPARE_THREADS=str(sizes["prepare_threads"]),
        PLANNERWEB_WORKER_TOOL_THREADS=str(sizes["tool_threads"]),
    )
    logs = tmp_path / "logs"
    with (
        ConnectionSampler() as sampled,
        processes(db_worker("h0"), db_worker("h1"), env=env, logs=logs),
    ):
        ids = [
            run_submit_plan(
                title=f"plan {n}", document=chain(out, f"r{n}", seconds=1.0), submitted_by=None
            ).pk
            for n in range(100)
        ]
        wait_for(lambda: all_ended(ids), timeout=180, what="100 runs to end", logs=logs)
    statuses = Counter(Run.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {RunStatus.SUCCEEDED: 100}
    assert lines(out) == Counter({f"r{n}:s{i}": 1 for n in range(100) for i in range(3)})
    assert_transcripts_gap_free(ids)
    # Runs overlapped far beyond one per worker process.
    assert most_runs_at_once(ids) > 10
    # Both processes within their connection budget (plus this test's own connections).
    assert sampled.most <= 2 * connection_budget(sizes) + 4, sampled.most


def test_a_worker_killed_with_many_runs_in_flight_loses_none_and_repeats_no_finished_step(
    tools: None, tmp_path: Path
) -> None:
    out = tmp_path / "effects.txt"
    env = child_env(tmp_path)
    logs = tmp_path / "logs"
    # The victim starts alone, so that it holds runs when it dies; the survivor comes after.
    with processes(db_worker("victim"), env=env, logs=logs) as procs:
        with transaction.atomic():  # queued together
            ids = [
                run_submit_plan(
                    title=f"plan {n}",
                    document=chain(
                        out, f"r{n}", seconds=1.0, tool="append_idem" if n % 2 else "append"
                    ),
                    submitted_by=None,
                ).pk
                for n in range(40)
            ]
        victim = f":{procs[0].pid}/"

        def victim_holds_many() -> bool:
            return (
                Step.objects.filter(run__lease_owner__contains=victim, status="running").count()
                >= 10
            )

        wait_for(victim_holds_many, timeout=60, what="the victim to hold many runs", logs=logs)
        with processes(db_worker("survivor"), env=env, logs=logs / "survivor"):
            os.kill(procs[0].pid, signal.SIGKILL)
            procs[0].wait(10)
            finished_at_kill = set(
                Step.objects.filter(run_id__in=ids, status="succeeded").values_list("run_id", "key")
            )
            caught = list(
                Step.objects.filter(
                    run_id__in=ids, status="running", run__lease_owner__contains=victim
                ).values_list("run_id", "key", "tool__idempotent")
            )
            assert len(caught) >= 10
            wait_for(lambda: all_ended(ids), timeout=120, what="every run to end", logs=logs)

    assert_takeover_outcome(
        ids, lines(out), finished_at_kill, caught, keys=[f"s{i}" for i in range(3)]
    )

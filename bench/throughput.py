"""Throughput of the scale-out deployment: db_worker processes on PostgreSQL.

Prints, for 1, 2 and 4 ``manage.py db_worker`` processes, the runs per minute
and steps per second for 20-step plans (a chain) of 10 ms I/O-bound tools
(``runs.tools.builtin.sleep``), every step durably persisted with its
transcript events; then the worker pick-up latency (task enqueued → task
started by a worker) with NOTIFY wake-ups and with polling alone, and what an
idle worker costs the database (transactions per second).

Every run is checked (succeeded, every step ran once) before its time counts.

    .venv/bin/python bench/throughput.py             # database plannerweb_throughput, recreated
    .venv/bin/python bench/throughput.py --quick     # fewer runs
    BENCH_PG=postgres://user@host:5432 .venv/bin/python bench/throughput.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "plannerweb_throughput"
STEPS = 20
SLEEP_MS = 10


def setup_django() -> str:
    import psycopg

    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME}")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    os.environ["DATABASE_URL"] = f"{base}/{DB_NAME}"
    os.environ["PLANNERWEB_WORKER"] = "none"
    os.environ["PLANNERWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="plannerweb-throughput-")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "plannerweb.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from runs.models import Tool

    Tool.objects.create(
        name="sleep",
        kind="python",
        config={"callable": "runs.tools.builtin.sleep"},
        parameters_schema={"type": "object", "properties": {"ms": {"type": "number"}}},
    )
    return os.environ["DATABASE_URL"]


def chain() -> dict[str, Any]:
    return {
        "goal": "throughput",
        "steps": [
            {
                "id": f"s{i}",
                "action": "sleep",
                "params": {"ms": SLEEP_MS},
                "depends_on": [f"s{i - 1}"] if i else [],
            }
            for i in range(STEPS)
        ],
    }


@contextmanager
def workers(count: int, **env: str) -> Any:
    from django.conf import settings

    child_env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY, **env}
    procs = [
        subprocess.Popen(
            [sys.executable, "manage.py", "db_worker", "--no-startup-delay", "-v", "0"],
            cwd=ROOT,
            env=child_env,
        )
        for _ in range(count)
    ]
    try:
        time.sleep(2.0)  # imported, connected and idle
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def reset() -> None:
    from django_tasks_db.models import DBTaskResult

    from runs.models import Run, Task

    Run.objects.all().delete()
    Task.objects.all().delete()
    DBTaskResult.objects.all().delete()


def wait_all(ids: list[int], timeout: float) -> None:
    from runs.models import Run
    from runs.statemachine import RUN_TERMINAL

    deadline = time.monotonic() + timeout
    while Run.objects.filter(pk__in=ids, status__in=RUN_TERMINAL).count() < len(ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"runs did not finish within {timeout}s")
        time.sleep(0.02)


def check(ids: list[int]) -> None:
    from runs.models import Run, Step

    bad = Run.objects.filter(pk__in=ids).exclude(status="succeeded").count()
    assert bad == 0, f"{bad} runs did not succeed"
    once = Step.objects.filter(run_id__in=ids, status="succeeded", attempts=1).count()
    assert once == len(ids) * STEPS, f"{once} of {len(ids) * STEPS} steps ran once"


def throughput(count: int, runs_per_worker: int) -> tuple[float, float]:
    from django.db import transaction

    from runs.lifecycle.submit import run_submit_plan

    reset()
    document = chain()
    with workers(count):
        start = time.perf_counter()
        with transaction.atomic():  # all tasks become visible (and NOTIFY fires) at once
            ids = [
                run_submit_plan(title="bench", document=document, submitted_by=None).pk
                for _ in range(count * runs_per_worker)
            ]
        wait_all(ids, timeout=600)
        wall = time.perf_counter() - start
    check(ids)
    return len(ids) / wall * 60, len(ids) * STEPS / wall


def pickup(samples: int, **env: str) -> tuple[float, float]:
    from django_tasks_db.models import DBTaskResult

    from runs.lifecycle.submit import run_submit_plan

    reset()
    document = {"steps": [{"id": "s0", "action": "sleep", "params": {"ms": 1}}]}
    ids = []
    with workers(1, **env):
        for _ in range(samples):
            ids.append(run_submit_plan(title="pickup", document=document, submitted_by=None).pk)
            wait_all(ids, timeout=30)
            time.sleep(0.05)
    check_ids = DBTaskResult.objects.filter(status="SUCCESSFUL").values_list(
        "enqueued_at", "started_at"
    )
    latencies = sorted(
        (started - enqueued).total_seconds() * 1000 for enqueued, started in check_ids
    )
    return statistics.median(latencies), latencies[int(len(latencies) * 0.95) - 1]


def idle_cost(**env: str) -> float:
    """Transactions per second one idle worker costs the database."""
    from django.db import connection

    def commits() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                [DB_NAME],
            )
            return cursor.fetchone()[0]

    with workers(1, **env):
        time.sleep(1.0)
        before, t0 = commits(), time.perf_counter()
        time.sleep(5.0)
        after, t1 = commits(), time.perf_counter()
    # pg_stat_database lags by up to PGSTAT_MIN_INTERVAL; 5 s windows keep that small.
    return (after - before) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs per worker")
    args = parser.parse_args()
    url = setup_django()
    per_worker = 10 if args.quick else 25
    print(f"# plannerweb throughput on {url} ({platform.python_version()}, {os.cpu_count()} CPUs)")
    print(f"# {STEPS}-step chains of {SLEEP_MS} ms sleep tools; {per_worker} runs per worker")
    base = None
    for count in (1, 2, 4):
        per_min, per_s = throughput(count, per_worker)
        base = base or per_min
        print(
            f"workers={count}  runs/min={per_min:7.1f}  steps/s={per_s:6.1f}  "
            f"speed-up={per_min / base:4.2f}x"
        )
    samples = 15 if args.quick else 40
    for label, env in (
        ("NOTIFY wake-up, poll 1 s", {}),
        (
            "poll every 50 ms, no NOTIFY",
            {"PLANNERWEB_WORKER_LISTEN": "0", "PLANNERWEB_WORKER_POLL_SECONDS": "0.05"},
        ),
        ("poll every 1 s, no NOTIFY", {"PLANNERWEB_WORKER_LISTEN": "0"}),
    ):
        p50, p95 = pickup(samples, **env)
        cost = idle_cost(**env)
        print(
            f"pick-up ({label}): p50={p50:6.1f} ms  p95={p95:6.1f} ms  "
            f"idle worker costs {cost:5.1f} transactions/s"
        )


if __name__ == "__main__":
    main()

"""Many runs per worker: db_worker processes on PostgreSQL holding runs that mostly wait.

Submits RUNS runs of three chained 1-second steps (``runs.tools.builtin.sleep``,
an I/O wait, not idempotent: every start commits before its tool is called) to
WORKERS ``manage.py db_worker`` processes at once (one transaction), and prints the wall
time from the moment they are queued to the last run's end, the peak memory of each worker process (and
what a held run adds to it), and the most PostgreSQL connections the database
had open meanwhile. Every run is checked (succeeded, every step ran once).

    .venv/bin/python bench/many_runs.py                         # 200 runs, 2 workers
    .venv/bin/python bench/many_runs.py --runs 1000 --workers 4
    .venv/bin/python bench/many_runs.py --runs 20 --concurrency 1   # one run at a time per worker
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any

import throughput as shared

STEPS = 3
SLEEP_MS = 1000


def document() -> dict[str, Any]:
    return {
        "goal": "wait",
        "steps": [
            {
                "id": f"s{i}",
                "action": "sleep_strict",
                "params": {"ms": SLEEP_MS},
                "depends_on": [f"s{i - 1}"] if i else [],
            }
            for i in range(STEPS)
        ],
    }


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Sampler:
    """Samples PostgreSQL connections to the database and workers' memory while runs execute."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.connections = 0
        self.rss = dict.fromkeys(pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            while not self._stop.wait(0.1):
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (shared.DB_NAME,)
                ).fetchone()  # type: ignore[misc]
                self.connections = max(self.connections, count - 1)  # less the bench's own
                for pid in self.pids:
                    self.rss[pid] = max(self.rss[pid], rss_kib(pid, "VmRSS"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, help="PLANNERWEB_WORKER_CONCURRENCY")
    args = parser.parse_args()

    shared.setup_django()
    from django.db import transaction

    from runs.lifecycle.submit import run_submit_plan
    from runs.models import Run, Step, Tool

    Tool.objects.create(
        name="sleep_strict",
        kind="python",
        config={"callable": "runs.tools.builtin.sleep"},
        parameters_schema={"type": "object", "properties": {"ms": {"type": "number"}}},
        idempotent=False,
    )
    env = {"PLANNERWEB_WORKER_CONCURRENCY": str(args.concurrency)} if args.concurrency else {}
    plan = document()
    with shared.workers(args.workers, **env) as procs:
        pids = [p.pid for p in procs]
        idle = {pid: rss_kib(pid, "VmRSS") for pid in pids}
        with Sampler(pids) as sampler:
            begun = time.perf_counter()
            with transaction.atomic():  # all tasks become visible (and NOTIFY fires) at once
                ids = [
                    run_submit_plan(title="wait", document=plan, submitted_by=None).pk
                    for _ in range(args.runs)
                ]
            start = time.perf_counter()  # the runs are queued from here on
            submitted = start - begun
            shared.wait_all(ids, timeout=1200)
            wall = time.perf_counter() - start
    bad = Run.objects.filter(pk__in=ids).exclude(status="succeeded").count()
    assert bad == 0, f"{bad} runs did not succeed"
    once = Step.objects.filter(run_id__in=ids, status="succeeded", attempts=1).count()
    assert once == args.runs * STEPS, f"{once} of {args.runs * STEPS} steps ran once"

    held = args.runs / args.workers
    per_run = [(sampler.rss[pid] - idle[pid]) / held for pid in pids]
    print(
        f"# plannerweb many runs: postgresql, python {platform.python_version()}, "
        f"{os.cpu_count()} cpus, {args.workers} db_worker processes, concurrency "
        f"{args.concurrency or 'default'}"
    )
    print(
        f"{args.runs} runs x {STEPS} chained {SLEEP_MS} ms steps (critical path "
        f"{STEPS * SLEEP_MS / 1000:g} s): wall {wall:.2f} s from the moment they were queued "
        f"(submitting them took {submitted:.2f} s before)"
    )
    print(
        "peak RSS per worker process: "
        + ", ".join(f"{sampler.rss[pid] / 1024:.0f} MiB" for pid in pids)
        + f" (idle {', '.join(f'{idle[pid] / 1024:.0f}' for pid in pids)} MiB); "
        f"per held run {max(per_run):.0f} KiB"
    )
    print(f"PostgreSQL connections open to the database at most: {sampler.connections}")


if __name__ == "__main__":
    main()

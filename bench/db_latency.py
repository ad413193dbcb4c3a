"""PostgreSQL round trip and durable commit, back to back and after the process idled.

The machine's own floor under every write-ahead start: no plannerweb code runs here,
only psycopg against the server. Each figure is the median of ``--repeat`` samples,
taken back to back (``idle 0 ms``) and after sleeping ``--idle`` ms, as an executor
sleeps while its tools run. A non-idempotent step's start waits for one such commit,
so a plan whose critical path holds K starts pays at least K times the idle figure.

    .venv/bin/python bench/db_latency.py                  # BENCH_PG or the local server
    .venv/bin/python bench/db_latency.py --idle 5,50 --repeat 60
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import psycopg

TABLE = "plannerweb_db_latency"


def measure(work: Callable[[], None], idle_s: float, repeat: int) -> float:
    """Median ms of ``work`` over ``repeat`` samples, each after ``idle_s`` of sleep."""
    samples = []
    for _ in range(repeat + 3):  # three warm-ups
        if idle_s:
            time.sleep(idle_s)
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(samples[3:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--idle", default="50", help="comma-separated idle times in ms")
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        # A logged table (a temporary one writes no WAL, and its commits flush nothing).
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
        conn.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, n int)")
        conn.execute(f"INSERT INTO {TABLE} VALUES (1, 0)")

        def round_trip() -> None:
            conn.execute("SELECT 1").fetchone()

        def commit() -> None:  # one row changed, committed and flushed (synchronous_commit)
            conn.execute(f"UPDATE {TABLE} SET n = n + 1 WHERE id = 1")

        sync = conn.execute("SHOW synchronous_commit").fetchone()[0]  # type: ignore[index]
        print(f"# PostgreSQL at {base}, synchronous_commit {sync}, median of {args.repeat}")
        for idle_ms in [0.0] + [float(ms) for ms in args.idle.split(",")]:
            trip = measure(round_trip, idle_ms / 1000, args.repeat)
            durable = measure(commit, idle_ms / 1000, args.repeat)
            print(
                f"idle {idle_ms:5g} ms: round trip (SELECT 1) {trip:.3f} ms, "
                f"one-row UPDATE committed {durable:.3f} ms"
            )
        conn.execute(f"DROP TABLE {TABLE}")


if __name__ == "__main__":
    main()

"""What a non-idempotent run's commits cost on PostgreSQL, part by part.

Runs one ``bench/engine.py`` shape (wide-100 unless told) with non-idempotent sleep
tools, alternating variants of the scratch database ``plannerweb_bench`` (recreated at
the start) in one process, round after round, so that the machine's drift from minute
to minute falls on every variant alike. For each variant it prints makespan / critical
path (median) and the median time of the journal's write for the big commits (at least
50 steps: 98 starts, 98 finishes with the sink's start) and for the small ones.

Variants (``--variants``, comma-separated):

- ``as-is``: the schema and settings as migrated;
- ``no-event-fk``: the transcript events' foreign key to their run dropped;
- ``no-event-id``: the events' surrogate key index (``id``) dropped;
- ``async-commit``: ``synchronous_commit = off`` on the executor's connection: the
  commit does not wait for the WAL flush (not durable; shows what the flush costs);
- ``no-events``: a simulation, not a configuration: a commit of more than four events
  writes only its first two (the transcript is incomplete), to show what the rest cost.

    .venv/bin/python bench/commit_costs.py
    .venv/bin/python bench/commit_costs.py --shape layers --n 64 --rounds 4
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine  # bench/engine.py: the same set-up and runs

BIG_COMMIT_STEPS = 50
EVENT_FK = "runs_transcriptevent_run_id_7b543b1c_fk_runs_run_id"
ADD_EVENT_FK = (
    f"ALTER TABLE runs_transcriptevent ADD CONSTRAINT {EVENT_FK} FOREIGN KEY (run_id) "
    "REFERENCES runs_run(id) DEFERRABLE INITIALLY DEFERRED"
)


class Variants:
    """Puts the scratch database and the journal into one variant at a time."""

    def __init__(self) -> None:
        from runs.execution.journal import Journal

        self.journal_commit = Journal.commit
        self.current = "as-is"

    def _sql(self, *statements: str) -> None:
        from django.db import connection

        with connection.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)

    def _executor_setting(self, value: str) -> None:
        from runs.execution.journal_link import link_for_thread

        # The executor writes on its thread's kept link: set it on that thread.
        engine._worker.submit(
            lambda: link_for_thread().raw.execute(f"SET synchronous_commit = {value}")
        ).result()

    def _events_cut(self, on: bool) -> None:
        from runs.execution.journal import Journal

        original = self.journal_commit

        def commit(journal: Any, batch: Any, **kw: Any) -> list[int]:
            if len(batch.events) > 4:
                batch.events = batch.events[:2]
            return original(journal, batch, **kw)

        Journal.commit = commit if on else original  # type: ignore[method-assign]

    def switch(self, name: str) -> None:
        """Undo the current variant, then apply ``name``."""
        undo: dict[str, Callable[[], None]] = {
            "no-event-fk": lambda: self._sql(ADD_EVENT_FK),
            "no-event-id": lambda: self._sql(
                "ALTER TABLE runs_transcriptevent ADD PRIMARY KEY (id)"
            ),
            "async-commit": lambda: self._executor_setting("on"),
            "no-events": lambda: self._events_cut(False),
        }
        apply: dict[str, Callable[[], None]] = {
            "no-event-fk": lambda: self._sql(
                f"ALTER TABLE runs_transcriptevent DROP CONSTRAINT {EVENT_FK}"
            ),
            "no-event-id": lambda: self._sql(
                "ALTER TABLE runs_transcriptevent DROP CONSTRAINT runs_transcriptevent_pkey"
            ),
            "async-commit": lambda: self._executor_setting("off"),
            "no-events": lambda: self._events_cut(True),
        }
        if name not in apply and name != "as-is":
            raise SystemExit(f"unknown variant {name!r}")
        undo.get(self.current, lambda: None)()
        apply.get(name, lambda: None)()
        self.current = name


class WriteTimer:
    """Times the journal's writes (the batch's round trip to the server), big and small."""

    def __init__(self) -> None:
        from runs.execution import journal_link

        self.big: list[float] = []
        self.small: list[float] = []
        write = journal_link.Link.write
        timer = self

        def timed(link: Any, batch: Any, *args: Any, **kw: Any) -> list[int]:
            start = time.perf_counter()
            seqs = write(link, batch, *args, **kw)
            took = time.perf_counter() - start
            (timer.big if len(batch.steps) >= BIG_COMMIT_STEPS else timer.small).append(took)
            return seqs

        journal_link.Link.write = timed  # type: ignore[method-assign]

    def take(self) -> tuple[list[float], list[float]]:
        big, small = self.big, self.small
        self.big, self.small = [], []
        return big, small


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shape", default="wide")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--runs", type=int, default=5, help="runs per variant and round")
    parser.add_argument(
        "--variants", default="as-is,no-event-fk,no-event-id,async-commit,no-events"
    )
    args = parser.parse_args()

    engine.setup_django(postgres=True)
    names = args.variants.split(",")
    variants, timer = Variants(), WriteTimer()
    plan = engine.build_shape(args.shape, args.n)
    case = engine.Case(args.shape, args.n, "sleep")
    critical = engine.critical_path(plan) * case.sleep_ms / 1000
    ratios: dict[str, list[float]] = {name: [] for name in names}
    writes: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in names}
    engine.run_engine_once(case, plan, "sleep_strict")  # warm-up
    for _ in range(args.rounds):
        for name in names:
            variants.switch(name)
            engine.run_engine_once(case, plan, "sleep_strict")  # its first run warms it up
            timer.take()
            for _ in range(args.runs):
                wall, _, _ = engine.run_engine_once(case, plan, "sleep_strict")
                ratios[name].append(wall / critical)
            big, small = timer.take()
            writes[name][0].extend(big)
            writes[name][1].extend(small)
    variants.switch("as-is")
    print(
        f"# {args.shape}-{args.n}, non-idempotent sleep tools, PostgreSQL, "
        f"{args.rounds} rounds x {args.runs} runs per variant (medians)"
    )
    for name in names:
        big, small = writes[name]
        print(
            f"{name:13} makespan/critical-path {statistics.median(ratios[name]):.3f}  "
            f"write of a big commit {1000 * statistics.median(big) if big else 0:.2f} ms, "
            f"of a small one {1000 * statistics.median(small):.2f} ms"
        )


if __name__ == "__main__":
    main()

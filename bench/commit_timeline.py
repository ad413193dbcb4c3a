"""One run's commits and tool calls on a timeline: where a non-idempotent plan's makespan goes.

Runs a ``bench/engine.py`` shape (wide-100 unless told) with non-idempotent sleep tools
through the real engine, records when each journal commit and each tool call starts
and ends, and prints the commits (rows, start → end, duration) and the spread of the
tools' starts and ends for a few runs, relative to the run's first commit; then
makespan / critical path for every run.

    .venv/bin/python bench/commit_timeline.py --postgres
    .venv/bin/python bench/commit_timeline.py --postgres --shape layers --n 64 --runs 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine  # bench/engine.py: the same set-up and runs

Span = tuple[str, float, float, int]  # (what, start, end, rows)


def record(spans: list[Span]) -> None:
    """Wrap the journal's commit and the sleep tool so that each call adds a span."""
    import runs.tools.builtin as builtin
    from runs.execution.journal import Journal

    commit = Journal.commit

    def timed_commit(self: Journal, batch: Any, **kwargs: Any) -> list[int]:
        start = time.perf_counter()
        seqs = commit(self, batch, **kwargs)
        spans.append(("commit", start, time.perf_counter(), len(batch.steps)))
        return seqs

    sleep = builtin.sleep

    async def timed_sleep(**params: Any) -> dict[str, Any]:
        start = time.perf_counter()
        result = await sleep(**params)
        spans.append(("tool", start, time.perf_counter(), 0))
        return result

    Journal.commit = timed_commit  # type: ignore[method-assign]
    builtin.sleep = timed_sleep  # type: ignore[assignment]


def show(spans: list[Span]) -> None:
    t0 = min(start for _, start, _, _ in spans)
    ms = lambda t: 1000 * (t - t0)  # noqa: E731
    for what, start, end, rows in sorted(spans, key=lambda s: s[1]):
        if what == "commit":
            print(
                f"  commit {rows:4d} rows {ms(start):8.2f} → {ms(end):8.2f}  ({ms(end) - ms(start):.2f} ms)"
            )
    starts = sorted(ms(start) for what, start, _, _ in spans if what == "tool")
    ends = sorted(ms(end) for what, _, end, _ in spans if what == "tool")
    print(
        f"  tools {len(starts)}: starts {starts[0]:.2f} … {starts[-1]:.2f}, ends … {ends[-1]:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--shape", default="wide")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--runs", type=int, default=8, help="after one warm-up")
    parser.add_argument("--show", type=int, default=3, help="runs whose timeline is printed")
    args = parser.parse_args()
    vendor = engine.setup_django(args.postgres)
    spans: list[Span] = []
    record(spans)
    case, plan = engine.Case(args.shape, args.n, "sleep"), engine.build_shape(args.shape, args.n)
    critical = engine.critical_path(plan) * case.sleep_ms / 1000
    print(f"# {args.shape}-{args.n}, non-idempotent sleep tools, {vendor}")
    ratios = []
    for i in range(args.runs + 1):
        spans.clear()
        wall, _, _ = engine.run_engine_once(case, plan, "sleep_strict")
        if i == 0:
            continue  # warm-up
        ratios.append(wall / critical)
        if i <= args.show:
            print(f"run {i}: makespan / critical path {wall / critical:.3f}")
            show(spans)
    print(
        f"makespan / critical path: median {statistics.median(ratios):.3f}, all "
        + ", ".join(f"{r:.3f}" for r in ratios)
    )


if __name__ == "__main__":
    main()

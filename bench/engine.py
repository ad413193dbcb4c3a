"""Executor benchmark: plans run through the real engine with every step durably persisted.

Prints one line per case, in the shapes of ``../shared/peers`` (LangGraph 1.2.22)
so the figures compare side by side:

- noop tools, shapes chain / wide / layers at N = 50, 200, 1000: per-step
  overhead in µs (execution wall / N, the peers' definition), the executor
  thread's CPU time per step (steadier than wall time on a busy machine), and
  the end-to-end figure (validate + store plan + execute) per step;
- 50 ms sleep tools, chain 20 / wide 100 / layers 64 / skewed-pair 20:
  makespan / critical path, for idempotent tools (they start before their commit)
  and for a non-idempotent copy (each start waits for its commit);
- a plain-asyncio floor for every case (no persistence), run in the same process;
- validate + topologically order a 1000-step plan (ms).

Every run is checked (the run succeeded, every step ran once) before its time counts.

    .venv/bin/python bench/engine.py                      # SQLite (a fresh file in a temp dir)
    .venv/bin/python bench/engine.py --postgres            # PostgreSQL (database plannerweb_bench, recreated)
    DATABASE_URL=postgres://... .venv/bin/python bench/engine.py   # PostgreSQL, that database
    .venv/bin/python bench/engine.py --quick               # fewer repeats
    .venv/bin/python bench/engine.py --trace               # spans exported over OTLP/HTTP to
                                                           # a collector in this process
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER_WIDTH = 8
SKEW_SHORT = 0.1


@dataclass(frozen=True)
class Shape:
    id: str
    deps: tuple[str, ...]
    weight: float = 1.0


def build_shape(shape: str, n: int) -> list[Shape]:
    """The peers' plan shapes (``shared/peers/peer_langgraph.py:build_plan``), in topological order."""
    if shape == "chain":
        return [Shape(f"s{i}", (f"s{i - 1}",) if i else ()) for i in range(n)]
    if shape == "wide":
        middle = [Shape(f"m{i}", ("root",)) for i in range(n - 2)]
        return [Shape("root", ()), *middle, Shape("sink", tuple(s.id for s in middle))]
    if shape == "layers":
        steps: list[Shape] = []
        previous: tuple[str, ...] = ()
        for start in range(0, n, LAYER_WIDTH):
            layer = tuple(
                f"l{start // LAYER_WIDTH}_{j}" for j in range(min(LAYER_WIDTH, n - start))
            )
            steps.extend(Shape(sid, previous) for sid in layer)
            previous = layer
        return steps
    if shape == "skewed-pair":
        steps = []
        for chain, phase in (("a", 0), ("b", 1)):
            for i in range(n // 2):
                weight = 1.0 if (i + phase) % 2 == 0 else SKEW_SHORT
                steps.append(Shape(f"{chain}{i}", (f"{chain}{i - 1}",) if i else (), weight))
        return steps
    raise SystemExit(f"unknown shape {shape!r}")


def critical_path(plan: list[Shape]) -> float:
    finish: dict[str, float] = {}
    for s in plan:
        finish[s.id] = s.weight + max((finish[d] for d in s.deps), default=0.0)
    return max(finish.values())


def plan_document(plan: list[Shape], tool: str, sleep_ms: float) -> dict[str, Any]:
    return {
        "goal": "benchmark",
        "steps": [
            {
                "id": s.id,
                "action": tool,
                "params": {"ms": sleep_ms * s.weight} if tool.startswith("sleep") else {},
                "depends_on": list(s.deps),
            }
            for s in plan
        ],
    }


# -- plain asyncio floor ----------------------------------------------------------------
async def asyncio_floor(plan: list[Shape], tool: str, sleep_ms: float) -> float:
    calls: dict[str, int] = {}

    async def call(step: Shape) -> dict[str, Any]:
        calls[step.id] = calls.get(step.id, 0) + 1
        if tool == "sleep":
            await asyncio.sleep(sleep_ms * step.weight / 1000)
        return {"ok": True}

    tasks: dict[str, asyncio.Task[Any]] = {}

    async def run(step: Shape) -> Any:
        for d in step.deps:
            await tasks[d]
        return await call(step)

    start = time.perf_counter()
    for s in plan:
        tasks[s.id] = asyncio.create_task(run(s))
    await asyncio.gather(*tasks.values())
    wall = time.perf_counter() - start
    assert len(calls) == len(plan) and set(calls.values()) == {1}
    return wall


# -- plannerweb ---------------------------------------------------------------------------
# A noop case repeats until this much execution time is measured: a run of N=200 lasts
# 7-18 ms, so five of them let one GC pass or a busy moment move the median (and the
# N=1000 / N=200 ratio) by a fifth; N=1000 reaches it in its five runs anyway.
NOOP_MEASURED_S = 0.3
NOOP_MAX_SAMPLES = 50


def _enough(case: Case, repeat: int, *, quick: bool) -> bool:
    """Whether ``case`` has its samples: ``repeat`` of them, and for noop ones the measured time."""
    if len(case.walls) < repeat:
        return False
    if case.tool != "noop" or quick:
        return True
    return sum(case.walls) >= NOOP_MEASURED_S or len(case.walls) >= NOOP_MAX_SAMPLES


_worker = ThreadPoolExecutor(1, thread_name_prefix="bench-worker")  # one kept loop, as a worker


@dataclass
class Case:
    shape: str
    n: int
    tool: str
    sleep_ms: float = 50.0
    walls: list[float] = field(default_factory=list)
    strict_walls: list[float] = field(default_factory=list)  # non-idempotent tools
    e2e: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the executor thread's CPU time
    floor: list[float] = field(default_factory=list)


def run_engine_once(
    case: Case, plan: list[Shape], tool: str | None = None
) -> tuple[float, float, float]:
    from runs.execution.engine import RunExecutor
    from runs.execution.journal import Journal
    from runs.lifecycle.claim import run_claim
    from runs.lifecycle.intake import MAX_PARALLEL_MAX
    from runs.lifecycle.planning_hooks import PlanningHooks
    from runs.lifecycle.submit import run_submit_plan
    from runs.lifecycle.supervision import Supervision
    from runs.lifecycle.traces import traced_run
    from runs.models import Run, Step

    document = plan_document(plan, tool or case.tool, case.sleep_ms)
    t0 = time.perf_counter()
    run = run_submit_plan(
        title=f"bench {case.shape} {case.n}",
        document=document,
        submitted_by=None,
        # As many at once as a run may take (256): wide N=1000 keeps 256 of its steps running.
        max_parallel=min(len(plan), MAX_PARALLEL_MAX),
    )
    assert run.status == "queued", run.stop_reason
    assert run_claim(run_id=run.pk, worker_id="bench") is not None

    def execute() -> tuple[str, float, float, float]:
        executor = RunExecutor(run.pk, supervision=Supervision(), planning=PlanningHooks())
        executor.load()
        with Journal() as executor.journal, traced_run(run.pk, phase="execute"):
            c1, t1 = time.thread_time(), time.perf_counter()
            status = executor.run_loaded()  # what execute() runs after load()
            # CPU time of this thread: what a busy neighbour on the machine changes least.
            return status, t1, time.perf_counter(), time.thread_time() - c1

    # On a worker thread, as every executor runs (embedded workers, run_plan --wait; the
    # db_worker command sets its own SIGINT handler): on the main thread with Python's
    # default one, asyncio's Runner swaps SIGINT handlers around each run, ~0.2 ms here.
    status, t1, t2, cpu = _worker.submit(execute).result()
    assert status == "succeeded", Run.objects.get(pk=run.pk).stop_reason
    done = Step.objects.filter(run=run, status="succeeded", attempts=1).count()
    assert done == len(plan), f"{done} of {len(plan)} steps succeeded once"
    return t2 - t1, t2 - t0, cpu


class _Collector:
    """An OTLP/HTTP trace receiver on loopback in this process: counts the export requests."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        collector = self

        class Receive(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                collector.bytes += len(self.rfile.read(int(self.headers["Content-Length"] or 0)))
                collector.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.requests = self.bytes = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)
        import threading

        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


def start_tracing() -> _Collector:
    """Tracing on as a deployment turns it on (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), into a
    collector in this process; step spans leave through their exporter process."""
    from runs.telemetry import tracing

    collector = _Collector()
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = collector.endpoint
    tracing.setup_from_env()
    return collector


def setup_django(postgres: bool) -> str:
    """SQLite in a fresh temp dir; or PostgreSQL: DATABASE_URL as given, or (--postgres) a scratch db."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plannerweb.settings")
    os.environ["PLANNERWEB_WORKER"] = "none"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        pass  # the operator chose the database; migrations are applied to it
    elif postgres:
        import psycopg

        base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS plannerweb_bench")
            conn.execute("CREATE DATABASE plannerweb_bench")
        os.environ["DATABASE_URL"] = f"{base}/plannerweb_bench"
    else:
        os.environ["PLANNERWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="plannerweb-bench-")
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from runs.models import Tool

    Tool.objects.create(
        name="noop",
        kind="python",
        config={"callable": "runs.tools.builtin.noop"},
        parameters_schema={"type": "object"},
        idempotent=True,
    )
    # sleep_strict: the same tool, not idempotent: every start waits for its running row to commit.
    for name, idempotent in (("sleep", True), ("sleep_strict", False)):
        Tool.objects.create(
            name=name,
            kind="python",
            config={"callable": "runs.tools.builtin.sleep"},
            parameters_schema={"type": "object", "properties": {"ms": {"type": "number"}}},
            idempotent=idempotent,
        )
    from django.db import connection

    from runs.lifecycle.worker import tune_gc_for_service

    tune_gc_for_service()  # as a worker process does once it is set up
    return connection.vendor


def bench_validation(samples: int = 11) -> dict[str, tuple[float, float]]:
    """Median and worst of ``samples`` validate+order calls per shape, in ms (GC passes show in the worst)."""
    from django.conf import settings

    from runs.planning.validation import validate_plan
    from runs.tools.registry import load_tool_specs

    tools = load_tool_specs()
    out = {}
    for shape in ("chain", "layers", "wide"):
        document = plan_document(build_shape(shape, 1000), "sleep", 50)
        times = []
        for _ in range(samples):
            t = time.perf_counter()
            validated = validate_plan(
                document, tools=tools, max_steps=settings.PLANNERWEB_MAX_PLAN_STEPS
            )
            times.append(time.perf_counter() - t)
            assert validated.is_valid and len(validated.order) == 1000
        out[shape] = (statistics.median(times) * 1000, max(times) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--postgres", action="store_true", help="run on PostgreSQL (BENCH_PG base URL)"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--quick", action="store_true", help="repeat 2, skip N=1000 sleep-free warmups"
    )
    parser.add_argument("--json", type=Path, help="also write one JSON object per case here")
    parser.add_argument("--only", help="comma-separated shapes to run")
    parser.add_argument("--tools", help="comma-separated tool kinds to run (noop, sleep)")
    parser.add_argument("--sizes", help="comma-separated N of the noop cases (50,200,1000)")
    parser.add_argument(
        "--trace", action="store_true", help="export spans to an OTLP collector in this process"
    )
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat

    vendor = setup_django(args.postgres)
    collector = start_tracing() if args.trace else None
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else [50, 200, 1000]
    cases = [Case(s, n, "noop") for s in ("chain", "wide", "layers") for n in sizes]
    cases += [
        Case("chain", 20, "sleep"),
        Case("wide", 100, "sleep"),
        Case("layers", 64, "sleep"),
        Case("skewed-pair", 20, "sleep"),
    ]
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c.shape in keep]
    if args.tools:
        kinds = set(args.tools.split(","))
        cases = [c for c in cases if c.tool in kinds]

    print(
        f"# plannerweb engine benchmark: {vendor}, python {platform.python_version()}, "
        f"{os.cpu_count()} cpus, repeat {repeat} (median; noop cases until "
        f"{NOOP_MEASURED_S:g} s measured, at most {NOOP_MAX_SAMPLES}), every step persisted, "
        f"tracing {'on (OTLP/HTTP to an in-process collector)' if collector else 'off'}"
    )
    validation = bench_validation()
    print(
        "validate+order 1000 steps (median / worst of 11): "
        + ", ".join(f"{k} {med:.1f} / {worst:.1f} ms" for k, (med, worst) in validation.items())
    )
    rows = []
    for case in cases:
        plan = build_shape(case.shape, case.n)
        i = 0
        while not _enough(case, repeat, quick=args.quick):  # run 0 is a warm-up
            wall, e2e, cpu = run_engine_once(case, plan)
            floor = asyncio.run(asyncio_floor(plan, case.tool, case.sleep_ms))
            if case.tool == "sleep":
                strict, _, _ = run_engine_once(case, plan, "sleep_strict")
                if i:
                    case.strict_walls.append(strict)
            if i:
                case.walls.append(wall)
                case.e2e.append(e2e)
                case.cpu.append(cpu)
                case.floor.append(floor)
            i += 1
        wall = statistics.median(case.walls)
        floor = statistics.median(case.floor)
        row: dict[str, Any] = {
            "db": vendor,
            "shape": case.shape,
            "n": case.n,
            "tool": case.tool,
            "median_wall_s": round(wall, 6),
            "asyncio_floor_s": round(floor, 6),
        }
        if case.tool == "noop":
            row["per_step_us"] = round(wall / case.n * 1e6, 1)
            row["per_step_e2e_us"] = round(statistics.median(case.e2e) / case.n * 1e6, 1)
            row["asyncio_per_step_us"] = round(floor / case.n * 1e6, 1)
            row["cpu_per_step_us"] = round(statistics.median(case.cpu) / case.n * 1e6, 1)
            print(
                f"{vendor:10} {case.shape:12} N={case.n:<5} noop   per-step {row['per_step_us']:7.1f} µs"
                f"  (executor CPU {row['cpu_per_step_us']:5.1f} µs;"
                f" end-to-end incl. validate+store {row['per_step_e2e_us']:7.1f} µs;"
                f" asyncio floor {row['asyncio_per_step_us']:5.1f} µs)"
            )
        else:
            cp = critical_path(plan) * case.sleep_ms / 1000
            row["critical_path_s"] = cp
            row["makespan_over_cp"] = round(wall / cp, 3)
            row["strict_makespan_over_cp"] = round(statistics.median(case.strict_walls) / cp, 3)
            row["asyncio_over_cp"] = round(floor / cp, 3)
            print(
                f"{vendor:10} {case.shape:12} N={case.n:<5} sleep {case.sleep_ms:g}ms  makespan/critical-path "
                f"{row['makespan_over_cp']:.3f}  (wall {wall * 1000:.1f} ms; non-idempotent tools "
                f"{row['strict_makespan_over_cp']:.3f}; asyncio floor {row['asyncio_over_cp']:.3f})"
            )
        rows.append(row)
        sys.stdout.flush()
    per = {(r["shape"], r["n"]): r.get("per_step_us") for r in rows}
    for shape in ("chain", "wide", "layers"):
        if per.get((shape, 1000)) and per.get((shape, 200)):
            print(
                f"growth {shape}: per-step N=1000 / N=200 = {per[(shape, 1000)] / per[(shape, 200)]:.2f}"
            )
    if collector is not None:
        from runs.telemetry import tracing

        tracing.configure(None)  # flushes the last batch
        print(f"collector received {collector.requests} export requests, {collector.bytes} bytes")
    if args.json:
        with args.json.open("a") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

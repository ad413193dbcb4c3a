"""SIGKILL chaos on the scale-out deployment: nothing lost, no side effect run twice, no leak.

Three ``manage.py db_worker`` processes and one Daphne run against PostgreSQL and Redis with
default settings. The driver submits 50 plans of 5-20 steps (random DAGs over an idempotent and
a non-idempotent tool, one in three a fan-out of 8-12 steps behind one, which start under a
start intent, and one step behind them all, whose start commits their finishes held; every
call logs a ``start`` line before its sleep and a ``done`` line after),
then SIGKILLs a random worker every 3-5 s for two minutes, restarting it each time,
while a client polls the API. Then the workers run on until every run has ended. Printed:

- lost runs (not ended once the workers have drained the queue), and calls cut short by a kill;
- non-idempotent steps started more than once, and finished steps started again;
- transcript ``seq`` gaps and duplicates, and settled runs still holding a start intent or a
  held batch;
- "too many clients" errors in every process's log, API answers of 5xx, and the most
  PostgreSQL connections seen at once.

    .venv/bin/python bench/chaos.py                      # database plannerweb_chaos, recreated
    .venv/bin/python bench/chaos.py --minutes 0.5 --runs 10
    BENCH_PG=postgres://user@host:5432 REDIS_URL=redis://host:6379/0 .venv/bin/python bench/chaos.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "plannerweb_chaos"
PARAMS = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "line": {"type": "string"}, "seconds": {}},
}


async def logged_call(path: str, line: str, seconds: float = 0.0) -> dict[str, Any]:
    """The tools' callable: a ``start`` line, a sleep, a ``done`` line, each flushed at once."""
    with Path(path).open("a") as out:
        out.write(f"start {line}\n")
    await asyncio.sleep(seconds)
    with Path(path).open("a") as out:
        out.write(f"done {line}\n")
    return {"line": line}


def setup_django(base: str) -> None:
    import psycopg

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    os.environ["DATABASE_URL"] = f"{base}/{DB_NAME}"
    os.environ["PLANNERWEB_WORKER"] = "none"
    os.environ["PLANNERWEB_VAR_DIR"] = tempfile.mkdtemp(prefix="plannerweb-chaos-")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    os.environ["REDIS_PREFIX"] = f"chaos-{os.getpid()}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "plannerweb.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from runs.models import Tool

    for name, idempotent in (("log_idem", True), ("log_once", False)):
        Tool.objects.create(
            name=name,
            kind="python",
            config={"callable": "bench.chaos.logged_call"},
            parameters_schema=PARAMS,
            timeout_seconds=30,
            idempotent=idempotent,
            max_retries=2,
        )


def random_plan(rng: random.Random, log: Path, tag: str) -> dict[str, Any]:
    """5-20 steps, each depending on up to two earlier ones, on either tool; or a fan-out and in."""
    fan_out = rng.random() < 1 / 3
    steps: list[dict[str, Any]] = []
    together = rng.uniform(0.05, 0.6)  # a fan-out's steps take as long: they finish together
    for i in range(rng.randint(9, 13) if fan_out else rng.randint(5, 20)):
        if fan_out:  # s0, then the others behind it, nearly all non-idempotent
            deps = ["s0"] if i else []
            action = "log_idem" if rng.random() < 0.1 else "log_once"
        else:
            earlier = [s["id"] for s in steps]
            deps = rng.sample(earlier, k=min(len(earlier), rng.randint(0, 2)))
            action = rng.choice(("log_idem", "log_once"))
        steps.append(
            {
                "id": f"s{i}",
                "action": action,
                "params": {
                    "path": str(log),
                    "line": f"{tag}:s{i}",
                    "seconds": together if fan_out and i else rng.uniform(0.05, 0.6),
                },
                "depends_on": deps,
            }
        )
    if fan_out:  # the fan-in: one non-idempotent step behind them all
        params = {"path": str(log), "line": f"{tag}:sink", "seconds": 0.1}
        deps = [s["id"] for s in steps[1:]]
        steps.append({"id": "sink", "action": "log_once", "params": params, "depends_on": deps})
    return {"goal": f"chaos {tag}", "steps": steps}


class Processes:
    """The workers and the Daphne, each logging to its own file; killed workers are replaced."""

    def __init__(self, logs: Path, port: int) -> None:
        from django.conf import settings

        self.logs = logs
        self.env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY}
        self.workers: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.daphne = self._spawn(
            "daphne",
            ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "plannerweb.asgi:application"],
        )

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        out = (self.logs / f"{name}.log").open("wb")
        return subprocess.Popen(
            [sys.executable, *argv], cwd=ROOT, env=self.env, stdout=out, stderr=out
        )

    def start_worker(self) -> None:
        self.started += 1
        argv = ["manage.py", "db_worker", "--no-startup-delay", "--worker-id", f"w{self.started}"]
        self.workers.append(self._spawn(f"worker-{self.started}", argv))

    def kill_one(self, rng: random.Random) -> None:
        victim = self.workers.pop(rng.randrange(len(self.workers)))
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        self.start_worker()

    def stop(self) -> None:
        for proc in [*self.workers, self.daphne]:
            proc.terminate()
        for proc in [*self.workers, self.daphne]:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


class Watch(threading.Thread):
    """Samples the server's connection count and polls the API once a second; counts 5xx."""

    def __init__(self, base: str, port: int, token: str) -> None:
        super().__init__(daemon=True)
        self.base, self.port, self.token = base, port, token
        self.stop = threading.Event()
        self.max_connections = 0
        self.codes: Counter[int | str] = Counter()

    def run(self) -> None:
        import psycopg

        with psycopg.connect(f"{self.base}/postgres", autocommit=True) as conn:
            while not self.stop.wait(1.0):
                (count,) = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (DB_NAME,)
                ).fetchone() or (0,)
                self.max_connections = max(self.max_connections, int(count))
                self.codes[self._poll()] += 1

    def _poll(self) -> int | str:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/runs?limit=20",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError as error:
            return type(error).__name__


def wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"Daphne did not listen on port {port} within {timeout:.0f} s")


def side_effects(log: Path, ids: dict[str, int]) -> tuple[int, int, int]:
    """(calls cut short by a kill, non-idempotent steps started more than once, finished
    steps started again)."""
    from runs.models import Step

    once = {
        (run_id, key)
        for run_id, key in Step.objects.filter(
            run_id__in=ids.values(), tool__name="log_once"
        ).values_list("run_id", "key")
    }
    starts: Counter[tuple[int, str]] = Counter()
    restarted_after_done = dones = 0
    done: set[tuple[int, str]] = set()
    for entry in log.read_text().split("\n") if log.exists() else []:
        if not entry:
            continue
        what, line = entry.split(" ", 1)
        tag, key = line.split(":")
        step = (ids[tag], key)
        if what == "start":
            starts[step] += 1
            restarted_after_done += step in done
        else:
            done.add(step)
            dones += 1
    twice = sum(1 for step, n in starts.items() if n > 1 and step in once)
    return sum(starts.values()) - dones, twice, restarted_after_done


def seq_faults(run_ids: list[int]) -> tuple[int, int]:
    """(runs whose transcript has a seq gap, runs with a duplicate seq)."""
    from runs.models import TranscriptEvent

    gaps = dupes = 0
    for run_id in run_ids:
        seqs = list(
            TranscriptEvent.objects.filter(run_id=run_id)
            .order_by("seq")
            .values_list("seq", flat=True)
        )
        dupes += len(seqs) != len(set(seqs))
        gaps += sorted(set(seqs)) != list(range(1, len(set(seqs)) + 1))
    return gaps, dupes


def too_many_clients(logs: Path) -> int:
    return sum(p.read_text(errors="replace").count("too many clients") for p in logs.glob("*.log"))


def chaos(args: argparse.Namespace, base: str) -> None:
    from django.contrib.auth.models import User

    from runs.execution.main_phase import ANNOUNCED
    from runs.lifecycle.submit import run_submit_plan
    from runs.models import Run, RunStatus, TranscriptEvent
    from runs.statemachine import RUN_TERMINAL
    from runs.tokens import api_token_create

    # Ended, or handed to a human (a partly run non-idempotent step escalates): nothing more to do.
    settled = {*RUN_TERMINAL, RunStatus.ESCALATED, RunStatus.AWAITING_APPROVAL}

    rng = random.Random(args.seed)
    var = Path(os.environ["PLANNERWEB_VAR_DIR"])
    log, logs = var / "calls.log", var / "logs"
    logs.mkdir(parents=True)
    operator = User.objects.create_superuser("chaos", password="chaos-password")
    token = api_token_create(user=operator, name="chaos").plaintext
    port = args.port
    procs = Processes(logs, port)
    for _ in range(args.workers):
        procs.start_worker()
    wait_listening(port)
    watch = Watch(base, port, token)
    watch.start()
    tags = {f"r{n}": 0 for n in range(args.runs)}

    def submit(wave: list[str]) -> None:
        for tag in wave:
            document = random_plan(rng, log, tag)
            tags[tag] = run_submit_plan(
                title=f"chaos {tag}", document=document, submitted_by=operator
            ).pk

    # In waves, one shortly before each kill (about one every 4 s), so that kills find runs in
    # flight: submitted all at once, they had all ended before the second kill.
    count = max(1, round(args.minutes * 60 / 4))
    waves = [list(tags)[n::count] for n in range(count)]
    kills = 0
    chaos_until = time.monotonic() + args.minutes * 60
    try:
        while time.monotonic() < chaos_until:
            pause = rng.uniform(3.0, 5.0)
            time.sleep(pause - 1.5)
            submit(waves.pop(0) if waves else [])
            time.sleep(rng.uniform(0.3, 1.5))  # the wave's first steps are running
            procs.kill_one(rng)
            kills += 1
        submit([tag for wave in waves for tag in wave])
        ids = list(tags.values())
        drain_until = time.monotonic() + args.drain
        while time.monotonic() < drain_until:
            if Run.objects.filter(pk__in=ids, status__in=settled).count() == len(ids):
                break
            time.sleep(1.0)
    finally:
        watch.stop.set()
        watch.join(5)
        procs.stop()
    statuses = Counter(Run.objects.filter(pk__in=ids).values_list("status", flat=True))
    lost = sum(n for status, n in statuses.items() if status not in settled)
    cut_short, twice, restarted = side_effects(log, tags)
    gaps, dupes = seq_faults(ids)
    intents = Run.objects.filter(pk__in=ids, status__in=settled).exclude(starting=[]).count()
    held = Run.objects.filter(pk__in=ids, status__in=settled).exclude(held="").count()
    announced = TranscriptEvent.objects.filter(run_id__in=ids, payload__reason=ANNOUNCED).count()
    server_errors = sum(
        n for code, n in watch.codes.items() if isinstance(code, int) and code >= 500
    )
    print(
        f"# {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, PostgreSQL + Redis"
    )
    print(f"runs {len(ids)}, workers {args.workers}, kills {kills} over {args.minutes} min")
    print(f"statuses: {dict(statuses)}")
    print(f"lost runs: {lost}")
    print(f"calls cut short by a kill (a start line, no done line): {cut_short}")
    print(f"non-idempotent steps started twice: {twice}")
    print(f"finished steps started again: {restarted}")
    print(f"transcript seq gaps: {gaps}, duplicates: {dupes}")
    print(f"settled runs still holding a start intent: {intents}, a held batch: {held}")
    print(f"steps a takeover recorded started from a start intent: {announced}")
    print(f"'too many clients' errors: {too_many_clients(logs)}")
    print(f"API polls: {dict(watch.codes)} (5xx: {server_errors})")
    print(f"most PostgreSQL connections at once: {watch.max_connections}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=2.0, help="how long workers are killed")
    parser.add_argument(
        "--drain", type=float, default=300.0, help="seconds allowed to finish after"
    )
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    base = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
    setup_django(base)
    chaos(args, base)


if __name__ == "__main__":
    main()

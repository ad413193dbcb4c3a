"""Event latency benchmark: state change committed → message received by websocket clients.

Starts a real Daphne (the embedded default: in-process worker, in-memory channel
layer; or ``--redis``: channels_redis at REDIS_URL) on a fresh SQLite database,
connects N authenticated websocket clients to one run's ``ws/runs/<id>/``, lets
the server's worker execute the run, and measures for every live event the time
from its ``at`` stamp (taken by the writer just before its commit) to its arrival
at each client. Replayed events (older than the moment every client was
connected) are not counted. Prints p50 / p95 / max per client count.

    .venv/bin/python bench/events.py                    # 1 and 200 clients, embedded
    .venv/bin/python bench/events.py --redis            # the same through Redis
    .venv/bin/python bench/events.py --clients 1,50,200 --steps 50 --step-ms 20
    BENCH_PYFLAGS="-m cProfile -o /tmp/daphne.prof" .venv/bin/python bench/events.py  # profile the server
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# A Redis database number of its own, so the bench's groups never meet anyone else's.
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
TERMINAL = {"succeeded", "failed", "rolled_back", "escalated", "cancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(folder: Path, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "plannerweb.settings",
            "PLANNERWEB_VAR_DIR": str(folder),
            "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "PLANNERWEB_SANDBOX_DIR": str(folder / "sandbox"),
            "PLANNERWEB_WORKER_POLL_SECONDS": "0.05",
            "LOG_LEVEL": "WARNING",
        }
    )
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def start_daphne(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, *os.environ.get("BENCH_PYFLAGS", "").split(), "-m", "daphne"]
            + ["-b", "127.0.0.1", "-p", str(port)]
            + ["plannerweb.asgi:application"],
            cwd=ROOT,
            env={**env, "PLANNERWEB_WORKER": "inprocess"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"daphne exited; see {log}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=2):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit(f"daphne did not start; see {log}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def session_cookie() -> str:
    """A logged-in session for the demo operator, written straight into the shared database."""
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
    )
    from django.contrib.sessions.backends.db import SessionStore

    user = get_user_model().objects.get(username="operator")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    return f"sessionid={session.session_key}"


def submit_run(steps: int, step_ms: int, gate_ms: int) -> int:
    """A chain: one long sleep (the clients connect meanwhile), then ``steps`` short sleeps."""
    from runs.lifecycle.submit import run_submit_plan

    chain = [{"id": "gate", "action": "sleep", "params": {"ms": gate_ms}}]
    for i in range(steps):
        chain.append(
            {
                "id": f"s{i}",
                "action": "sleep",
                "params": {"ms": step_ms},
                "depends_on": [chain[-1]["id"]],
            }
        )
    run = run_submit_plan(title="event latency", document={"steps": chain}, submitted_by=None)
    return run.pk


async def client(
    url: str, headers: dict[str, str], connected: asyncio.Event, frames: list[int]
) -> list[tuple[float, float]]:
    """Receive until the run ends; returns (event stamp, arrival) for every event.

    ``frames[0]`` counts the websocket messages received (one holds one event or a batch).
    """
    import websockets

    got: list[tuple[float, float]] = []
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        connected.set()
        async for raw in ws:
            now = time.time()  # every event of a batch frame arrived with that frame
            data = json.loads(raw)
            if data.get("type") == "event":
                events = [data]
            elif data.get("type") == "events":
                events = data["events"]
            else:
                continue
            frames[0] += 1
            for event in events:
                got.append((datetime.fromisoformat(event["at"]).timestamp(), now))
            if any(
                e["kind"] == "run.status" and e["payload"].get("to_status") in TERMINAL
                for e in events
            ):
                break
    return got


async def measure(port: int, cookie: str, run_id: int, clients: int) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/ws/runs/{run_id}/"
    headers = {"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"}
    flags = [asyncio.Event() for _ in range(clients)]
    frames = [0]
    tasks = [asyncio.create_task(client(url, headers, flags[i], frames)) for i in range(clients)]
    await asyncio.wait_for(asyncio.gather(*(f.wait() for f in flags)), timeout=60)
    all_connected = time.time()
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    latencies = [
        (arrived - stamped) * 1000
        for got in results
        for stamped, arrived in got
        if stamped > all_connected
    ]
    if not latencies:
        raise SystemExit("no live events arrived after every client connected: raise --gate-ms")
    latencies.sort()
    return {
        "clients": clients,
        "events_per_client": len(latencies) / clients,
        "messages": len(latencies),
        "frames_per_client": frames[0] / clients,
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(0.95 * (len(latencies) - 1))],
        "max_ms": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", action="store_true", help="channels_redis at REDIS_URL")
    parser.add_argument("--clients", default="1,200", help="client counts, comma-separated")
    parser.add_argument("--steps", type=int, default=50, help="short steps after the gate")
    parser.add_argument("--step-ms", type=int, default=20, help="each short step sleeps this long")
    parser.add_argument("--gate-ms", type=int, default=3000, help="time for the clients to connect")
    args = parser.parse_args()
    redis_url = (os.environ.get("REDIS_URL") or DEFAULT_REDIS) if args.redis else None

    folder = Path(tempfile.mkdtemp(prefix="plannerweb-bench-events-"))
    env = server_env(folder, redis_url)
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**env, "PLANNERWEB_WORKER": "none"},
            check=True,
            capture_output=True,
        )
    # This process writes runs only; the server's worker executes and publishes them.
    os.environ.update({**env, "PLANNERWEB_WORKER": "none"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    port = free_port()
    server = start_daphne(env, port, folder / "daphne.log")
    try:
        cookie = session_cookie()
        layer = f"channels_redis ({redis_url})" if redis_url else "in-memory (embedded)"
        print(
            f"event latency: Daphne + in-process worker, SQLite, channel layer {layer}; "
            f"run = {args.steps} steps of {args.step_ms} ms after a gate"
        )
        for count in (int(c) for c in args.clients.split(",")):
            run_id = submit_run(args.steps, args.step_ms, args.gate_ms)
            server_cpu, own_cpu, wall = cpu_seconds(server.pid), time.process_time(), time.time()
            # The clients share this process with Django (loaded to write runs): keep that heap
            # out of their full GC collections (50+ ms pauses that no browser would have).
            gc.collect()
            gc.freeze()
            r = asyncio.run(measure(port, cookie, run_id, count))
            wall = time.time() - wall
            server_cpu = cpu_seconds(server.pid) - server_cpu
            own_cpu = time.process_time() - own_cpu
            print(
                f"  {r['clients']:>4} clients: p50 {r['p50_ms']:6.1f} ms  p95 {r['p95_ms']:6.1f} ms"
                f"  max {r['max_ms']:6.1f} ms  ({r['events_per_client']:.0f} events in "
                f"{r['frames_per_client']:.0f} frames each, "
                f"{r['messages']} messages; CPU over {wall:.1f} s: server {server_cpu:.1f} s, "
                f"clients {own_cpu:.1f} s)"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

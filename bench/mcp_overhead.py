"""Per-call overhead of an MCP tool against the same work as a python tool.

The work is ``add(a, b)``: the MCP side is the test server's ``add`` (the SDK's
``MCPServer``, a sync function) over stdio (behind the lifeline) and over
streamable HTTP on loopback; the python side is ``runs.tools.builtin.echo`` (a sync
function, run in a thread as the python kind does) and ``runs.tools.builtin.noop``
(a coroutine). Each call goes through the kind's ``invoke`` on one event loop, one
after another, as a step would, after a warm-up that opens the session (the
server row is given directly: the database read happens once per session anyway).

    .venv/bin/python bench/mcp_overhead.py              # 500 calls each
    .venv/bin/python bench/mcp_overhead.py --calls 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "tests" / "runs" / "tools" / "kinds" / "mcp" / "server.py"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plannerweb.settings")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.gettempdir()}/mcp-bench.sqlite3")
os.environ.setdefault("PLANNERWEB_WORKER", "none")

import logging  # noqa: E402

import django  # noqa: E402

django.setup()
logging.getLogger("httpx2").setLevel(logging.WARNING)

from runs.tools.base import ToolSpec  # noqa: E402
from runs.tools.kinds import mcp, python  # noqa: E402
from runs.tools.kinds.mcp import sessions  # noqa: E402
from runs.tools.kinds.mcp.servers import ServerSpec  # noqa: E402

SERVERS: dict[str, ServerSpec] = {}


async def timed(call: Callable[[], Awaitable[Any]], calls: int) -> list[float]:
    for _ in range(20):
        await call()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_http() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/mcp"
        time.sleep(0.05)
    raise SystemExit("the HTTP MCP server did not start")


async def main(calls: int, url: str) -> dict[str, list[float]]:
    SERVERS["stdio"] = ServerSpec(
        name="stdio", transport="stdio", command=(sys.executable, str(SERVER), "stdio")
    )
    SERVERS["http"] = ServerSpec(name="http", transport="http", url=url)
    original = sessions.load_server
    sessions.load_server = SERVERS.__getitem__  # no database: the rows are given here
    params = {"a": 2, "b": 3}
    specs = {
        "python (sync, thread)": (
            python,
            ToolSpec("echo", "python", {"callable": "runs.tools.builtin.echo"}),
        ),
        "python (coroutine)": (
            python,
            ToolSpec("noop", "python", {"callable": "runs.tools.builtin.noop"}),
        ),
        "mcp stdio": (mcp, ToolSpec("add", "mcp", {"server": "stdio", "tool": "add"})),
        "mcp http": (mcp, ToolSpec("add", "mcp", {"server": "http", "tool": "add"})),
    }
    results = {}
    try:
        for label, (kind, spec) in specs.items():
            results[label] = await timed(lambda k=kind, s=spec: k.invoke(s, params), calls)
    finally:
        await sessions.close_all()
        sessions.load_server = original
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    proc, url = start_http()
    try:
        results = asyncio.run(main(args.calls, url))
    finally:
        proc.kill()
        proc.wait()
    print(f"{time.strftime('%Y-%m-%d')} python {platform.python_version()}, {os.cpu_count()} cores")
    print(f"{args.calls} sequential calls of add(a, b) each, per call:")
    base = statistics.median(results["python (sync, thread)"])
    for label, times in results.items():
        median = statistics.median(times)
        p95 = sorted(times)[int(len(times) * 0.95)]
        extra = (
            f"  (+{(median - base) * 1000:.3f} ms over the sync python tool)"
            if label.startswith("mcp")
            else ""
        )
        print(f"  {label:24} median {median * 1000:7.3f} ms  p95 {p95 * 1000:7.3f} ms{extra}")

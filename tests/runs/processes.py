"""Real worker and server processes for multi-process tests, on the test database.

The test process and its children share the database pytest-django created
(PostgreSQL, or SQLite's test file); tests using these need
``django_db(transaction=True)`` so the children see committed rows.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

REPO = Path(settings.BASE_DIR)


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Environment of a child process: this test's database, fast heartbeats, its own Redis prefix."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":  # the test database is a file (settings: TEST NAME)
        url = f"sqlite:///{db['NAME']}"
    else:
        url = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        )
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "PLANNERWEB_VAR_DIR": str(tmp_path / "var"),
        "PLANNERWEB_SANDBOX_DIR": str(tmp_path / "sandbox"),
        "PLANNERWEB_WORKER": "none",
        "PLANNERWEB_HEARTBEAT_SECONDS": "0.2",
        "PLANNERWEB_RECOVERY_SECONDS": "0.3",
        "PLANNERWEB_RETRY_BACKOFF_SECONDS": "0.01",
        "SECRET_KEY": settings.SECRET_KEY,  # sessions made here must be valid there
        "LOG_LEVEL": "WARNING",
        "REDIS_PREFIX": f"test-{uuid.uuid4().hex[:8]}",
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def processes(
    *commands: list[str], env: dict[str, str], logs: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start each command (argv after ``python``) in the repository; kill them all on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    outputs = []
    try:
        for i, argv in enumerate(commands):
            out = (logs / f"proc-{i}.log").open("wb")
            outputs.append(out)
            procs.append(
                subprocess.Popen(
                    [sys.executable, *argv], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
                )
            )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        for out in outputs:
            out.close()


def db_worker(worker_id: str) -> list[str]:
    return ["manage.py", "db_worker", "--no-startup-delay", "--worker-id", worker_id, "-v", "0"]


def daphne(port: int) -> list[str]:
    return ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "plannerweb.asgi:application"]


def wait_for(predicate: Any, *, timeout: float, what: str, logs: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            detail = ""
            if logs is not None:
                detail = "\n".join(p.read_text()[-2000:] for p in sorted(logs.glob("*.log")))
            raise AssertionError(f"timed out waiting for {what}\n{detail}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0

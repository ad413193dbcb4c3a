"""Browser-test harness: a real Daphne subprocess on its own SQLite database, and Chromium.

The server never shares the suite's database: even when pytest runs against
PostgreSQL (DATABASE_URL), the subprocess gets a fresh SQLite file in a temp
folder, migrated and seeded with ``seed_demo``, and runs the embedded worker.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Environment the server must not inherit from the test run (it brings its own).
_SCRUB = ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "ALLOWED_HOSTS")


def artifacts_dir() -> Path:
    path = Path(os.environ.get("PLANNERWEB_ARTIFACTS") or REPO / "var" / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """One Daphne process serving plannerweb, which the tests may kill and start again."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.db_path = folder / "db.sqlite3"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = artifacts_dir() / "daphne.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
        self.env.update(
            {
                "DJANGO_SETTINGS_MODULE": "plannerweb.settings",
                "PLANNERWEB_VAR_DIR": str(folder),
                "DATABASE_URL": f"sqlite:///{self.db_path}",
                "PLANNERWEB_SANDBOX_DIR": str(folder / "sandbox"),
                "PLANNERWEB_WORKER": "inprocess",
                # One run at a time: a run submitted while another runs waits, queued.
                "PLANNERWEB_WORKER_THREADS": "1",
                "PLANNERWEB_WORKER_CONCURRENCY": "1",
                "PLANNERWEB_WORKER_POLL_SECONDS": "0.2",
                # Short leases, so a run orphaned by a killed server is picked up quickly.
                "PLANNERWEB_HEARTBEAT_SECONDS": "0.4",
                "PLANNERWEB_RETRY_BACKOFF_SECONDS": "0.1",
                "PLANNERWEB_DEMO_PASSWORD": "",
                "DEBUG": "0",
            }
        )

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port)]
            + ["plannerweb.asgi:application"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"daphne exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not answer within 30 s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as when a machine dies mid-run."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the server's database directly (read-only), to compare the page with the truth."""
        with sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="package")
def daphne_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"needs Chromium at {CHROMIUM}")  # the marker hook decides skip vs fail
    server = LiveServer(tmp_path_factory.mktemp("browser-server"))
    server.manage("migrate", "--noinput", "-v", "0")
    server.manage("seed_demo")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="package")
def chromium() -> Iterator[Any]:
    # Package scope, not session: while sync Playwright runs, its event loop counts as
    # running in this thread, and Django refuses ORM calls from the tests that follow.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


class Pages:
    """Browser contexts (one per user) whose pages record console errors and uncaught errors."""

    def __init__(self, browser: Any, server: LiveServer, test_name: str) -> None:
        self.browser = browser
        self.server = server
        self.test_name = test_name
        self.contexts: list[Any] = []
        self.errors: list[str] = []
        # Console errors a test expects (e.g. refused websockets while the server is down).
        self.allowed: list[str] = []

    def login(self, username: str) -> Any:
        context = self.browser.new_context(base_url=self.server.url)
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", lambda m: self._console(username, m))
        page.on("pageerror", lambda e: self.errors.append(f"{username}: pageerror: {e}"))
        page.goto("/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", username)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.server.url}/")
        return page

    def _console(self, username: str, message: Any) -> None:
        if message.type != "error":
            return
        text = message.text
        if not any(allowed in text for allowed in self.allowed):
            self.errors.append(f"{username}: console: {text} ({message.location.get('url')})")

    def screenshot(self, page: Any, name: str) -> Path:
        path = artifacts_dir() / f"{self.test_name}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(
    chromium: Any, daphne_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Pages]:
    """Per-test browser contexts; the test fails if any page logged an error."""
    if daphne_server.process is None or daphne_server.process.poll() is not None:
        daphne_server.start()  # a previous test left it down
    recorder = Pages(chromium, daphne_server, request.node.name)
    try:
        yield recorder
    finally:
        recorder.close()
    assert recorder.errors == [], "pages logged errors:\n" + "\n".join(recorder.errors)

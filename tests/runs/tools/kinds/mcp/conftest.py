"""Real MCP servers for the tests: the SDK's server API as subprocesses, over stdio and HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runs.models import McpServer
from runs.tools.kinds.mcp import sessions

SERVER = str(Path(__file__).with_name("server.py"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    """Poll until the server accepts connections (it imports the SDK first)."""
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError("the MCP test server exited")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("the MCP test server did not start")


@pytest.fixture(scope="session")
def http_server_url() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, process)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def quick_ping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "PING_SECONDS", 0.3)


@pytest.fixture
def stdio_server(transactional_db: None, monkeypatch: pytest.MonkeyPatch) -> McpServer:
    monkeypatch.setenv("PW_TEST_SECRET", "hunter2-secret")
    return McpServer.objects.create(
        name="local",
        transport="stdio",
        command=[sys.executable, SERVER, "stdio"],
        env={"MCP_TEST_SECRET": "${PW_TEST_SECRET}"},
        cwd=os.getcwd(),
    )


@pytest.fixture
def http_server(transactional_db: None, http_server_url: str) -> McpServer:
    return McpServer.objects.create(
        name="remote", transport="http", url=http_server_url, headers={"X-Test": "yes"}
    )

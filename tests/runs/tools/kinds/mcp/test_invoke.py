"""The mcp kind against real MCP servers: calls, errors, timeouts, cancels, crashes, hangs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from io import StringIO
from typing import Any, TypeVar

import pytest
from django.core.management import call_command

from runs.models import McpServer, Run, Step
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.kinds.mcp import invoke, sessions, validate_config
from runs.tools.kinds.mcp.servers import LIFELINE
from tests.runs.tools.kinds.mcp.conftest import SERVER

T = TypeVar("T")


def spec(server: McpServer, tool: str) -> ToolSpec:
    return ToolSpec(name=tool, kind="mcp", config={"server": server.name, "tool": tool})


def scenario(steps: Callable[[], Awaitable[T]]) -> T:
    """Run ``steps`` on a fresh loop, then close that loop's sessions (the worker stopping)."""

    async def run() -> T:
        try:
            return await steps()
        finally:
            await sessions.close_all()

    return asyncio.run(run())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone_soon(pid: int) -> bool:
    for _ in range(100):
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_a_stdio_call_returns_the_structured_result_and_reuses_the_session(
    stdio_server: McpServer,
) -> None:
    async def steps() -> tuple[Any, Any, Any]:
        total = await invoke(spec(stdio_server, "add"), {"a": 2, "b": 3}, "key-1")
        first = await invoke(spec(stdio_server, "pid"), {})
        second = await invoke(spec(stdio_server, "pid"), {})
        return total, first, second

    total, first, second = scenario(steps)
    assert total == {"sum": 5}
    assert first == second
    assert gone_soon(first["pid"]), "closing the session stops the server"


def test_an_http_call_returns_the_structured_result(http_server: McpServer) -> None:
    result = scenario(lambda: invoke(spec(http_server, "add"), {"a": 40, "b": 2}))
    assert result == {"sum": 42}


def test_a_text_result_becomes_text(http_server: McpServer) -> None:
    result = scenario(lambda: invoke(spec(http_server, "drop"), {"table": "users"}))
    assert result == {"result": "dropped users"} or result == {"text": "dropped users"}


def test_is_error_fails_the_step_with_the_servers_message(http_server: McpServer) -> None:
    with pytest.raises(ToolError, match="MCP tool error from 'remote': .*disk full"):
        scenario(lambda: invoke(spec(http_server, "fail"), {"message": "disk full"}))


def test_the_server_gets_secrets_from_the_environment_and_the_row_holds_none(
    stdio_server: McpServer,
) -> None:
    result = scenario(lambda: invoke(spec(stdio_server, "secret_length"), {}))
    assert result == {"length": len("hunter2-secret")}
    assert "hunter2" not in str(McpServer.objects.values().get(pk=stdio_server.pk))


def test_a_missing_secret_is_a_clear_config_error(
    stdio_server: McpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PW_TEST_SECRET")
    with pytest.raises(ToolError, match=r"\$\{PW_TEST_SECRET\}, which is not set"):
        scenario(lambda: invoke(spec(stdio_server, "add"), {"a": 1, "b": 1}))


def test_a_crashed_server_fails_the_step_and_is_restarted_for_the_next_call(
    stdio_server: McpServer,
) -> None:
    async def steps() -> tuple[Any, str, Any]:
        before = await invoke(spec(stdio_server, "pid"), {})
        with pytest.raises(ToolError) as failure:
            await invoke(spec(stdio_server, "crash"), {})
        after = await invoke(spec(stdio_server, "pid"), {})
        return before, failure.value.message, after

    before, message, after = scenario(steps)
    assert "restarted for the next call" in message
    assert before != after


def test_a_hung_server_is_killed_after_the_timeout_and_restarted(
    stdio_server: McpServer, quick_ping: None
) -> None:
    async def steps() -> tuple[Any, Any]:
        before = await invoke(spec(stdio_server, "pid"), {})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(invoke(spec(stdio_server, "hang"), {"seconds": 30}), 0.3)
        for _ in range(100):  # the ping after the cancel finds it hung and drops the session
            if (await sessions.session_for(stdio_server.name)).closed is False and not alive(
                before["pid"]
            ):
                break
            await asyncio.sleep(0.05)
        after = await invoke(spec(stdio_server, "pid"), {})
        return before, after

    before, after = scenario(steps)
    assert before != after
    assert not alive(before["pid"])


def test_a_cancelled_call_leaves_a_responsive_server_in_use(
    http_server: McpServer, quick_ping: None
) -> None:
    async def steps() -> tuple[Any, Any, bool]:
        task = asyncio.create_task(invoke(spec(http_server, "wait"), {"seconds": 30}))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        session = await sessions.session_for(http_server.name)
        await asyncio.sleep(0.5)  # the ping after the cancel has answered
        result = await invoke(spec(http_server, "add"), {"a": 1, "b": 1})
        return result, session, session is await sessions.session_for(http_server.name)

    result, _, same = scenario(steps)
    assert result == {"sum": 2}
    assert same


def test_a_stdio_server_never_outlives_its_worker() -> None:
    """A worker (here a bare SDK client, started as the kind starts servers) dies by SIGKILL."""
    script = (
        "import asyncio, sys\n"
        "from mcp import Client, StdioServerParameters\n"
        "async def main():\n"
        f"    argv = ['-I', '-S', {LIFELINE!r}, sys.executable, {SERVER!r}, 'stdio']\n"
        "    params = StdioServerParameters(command=sys.executable, args=argv)\n"
        "    async with Client(params) as client:\n"
        "        print((await client.call_tool('pid', {})).structured_content['pid'], flush=True)\n"
        "        await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout is not None
        pid = int(worker.stdout.readline())
        assert alive(pid)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        assert gone_soon(pid)
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()


def test_the_config_names_a_server_and_a_tool() -> None:
    assert validate_config({"server": "db", "tool": "query"}) == []
    assert validate_config({"server": "db"}) == ["tool is required (a name)"]
    assert validate_config({"server": "db", "tool": "q", "overrides": ["fast"], "x": 1}) == [
        "unknown key 'x'",
        "overrides must list some of read_only, sensitive, idempotent",
    ]
    assert validate_config([]) == ["config must be an object"]


def test_an_unknown_server_is_a_config_error(transactional_db: None) -> None:
    unknown = ToolSpec(name="x", kind="mcp", config={"server": "nope", "tool": "x"})
    with pytest.raises(ToolConfigError, match="no MCP server named 'nope'"):
        scenario(lambda: invoke(unknown, {}))


def test_a_direct_request_for_input_over_the_newest_protocol_fails_with_a_clear_message(
    http_server: McpServer,
) -> None:
    with pytest.raises(ToolError) as failure:
        scenario(lambda: invoke(spec(http_server, "ask"), {}))
    assert "'elicitation/create'" in failure.value.message
    assert "the SDK's Resolve/Elicit" in failure.value.message


def test_a_plan_runs_mcp_steps_through_the_executor_and_stores_their_results(
    stdio_server: McpServer, execute: Callable[..., Run]
) -> None:
    call_command("tools_import", "--mcp", "local", stdout=StringIO())
    run = execute(
        {
            "goal": "add, then fail",
            "steps": [
                {"id": "sum", "tool": "local-add", "params": {"a": 1, "b": 2}},
                {
                    "id": "f",
                    "tool": "local-fail",
                    "params": {"message": "no"},
                    "depends_on": ["sum"],
                },
            ],
        }
    )
    steps = {s.key: s for s in Step.objects.filter(run=run, phase="main")}
    assert steps["sum"].status == "succeeded" and steps["sum"].result == {"sum": 3}
    assert steps["f"].status == "failed" and "MCP tool error from 'local'" in steps["f"].error


def test_a_call_the_server_refuses_keeps_the_session(http_server: McpServer) -> None:
    async def steps() -> tuple[str, bool]:
        session = await sessions.session_for(http_server.name)
        with pytest.raises(ToolError) as failure:
            await invoke(spec(http_server, "no_such_tool"), {})
        return failure.value.message, session is await sessions.session_for(http_server.name)

    message, same = scenario(steps)
    assert message.startswith("MCP ") and "no_such_tool" in message
    assert same

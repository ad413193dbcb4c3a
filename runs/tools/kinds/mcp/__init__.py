"""The mcp kind: call a tool of a registered MCP server through the official MCP Python SDK.

``config``: ``{"server": "<McpServer name>", "tool": "<the server's tool name>"}``,
plus, when discovery made the row, ``annotations`` (the server's hints, shown on
the tools page), ``overrides`` (flags set by hand that discovery leaves alone) and
``disappeared`` (the server stopped listing it; the row was disabled).

The call runs in this worker's session to the server (``sessions.py``). The
executor's timeout and the run's cancel cancel it; the session then stays only
if the server still answers a ping. Structured content becomes the step's
result; other content becomes ``{"content": [...]}`` (``{"text": ...}`` when it
is only text); ``isError`` fails the step with the server's message. A server
that crashes fails the step with a clear error and is started again for the
next call. A server's request for input during the call (elicitation) goes to
the step's asker (``runs.tools.asking``; see ``elicitation.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_types
from mcp import MCPError
from mcp_types import CONNECTION_CLOSED

from runs.telemetry.tracing import step_span_current
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.kinds.mcp.sessions import Session, describe, session_for

CONFIG_HELP = (
    '"server": the name of a registered MCP server; "tool": the name of its tool. '
    'Written by discovery: "annotations" (the server\'s hints) and "overrides" '
    '(flags set by hand, kept by the next discovery). Example: {"server": "db", "tool": "query"}'
)
FLAGS = ("read_only", "sensitive", "idempotent")
_KEYS = {"server", "tool", "annotations", "overrides", "disappeared"}


def validate_config(config: Any, *, parameters_schema: dict[str, Any] | None = None) -> list[str]:
    """Problems with an mcp config: the key set and their types."""
    if not isinstance(config, dict):
        return ["config must be an object"]
    problems = [f"unknown key {k!r}" for k in sorted(set(config) - _KEYS)]
    for key in ("server", "tool"):
        if not isinstance(config.get(key), str) or not config[key]:
            problems.append(f"{key} is required (a name)")
    if not isinstance(config.get("annotations", {}), dict):
        problems.append("annotations must be an object")
    if not isinstance(config.get("disappeared", False), bool):
        problems.append("disappeared must be true or false")
    overrides = config.get("overrides", [])
    if not isinstance(overrides, list) or not set(overrides) <= set(FLAGS):
        problems.append(f"overrides must list some of {', '.join(FLAGS)}")
    return problems


async def invoke(spec: ToolSpec, params: dict[str, Any], idempotency_key: str | None = None) -> Any:
    """Call the server's tool once in this worker's session; see the module docstring."""
    problems = validate_config(spec.config)
    if problems:
        raise ToolConfigError("; ".join(problems))
    server, tool = spec.config["server"], spec.config["tool"]
    session = await session_for(server)
    client = await session.opened()
    meta = {"idempotencyKey": idempotency_key} if idempotency_key else None
    try:
        with step_span_current(), session.in_flight.call(server, tool):
            result = await client.call_tool(tool, params, meta=meta)  # type: ignore[arg-type]
    except asyncio.CancelledError:
        _check_later(session)
        raise
    except MCPError as exc:
        # A protocol error from a live server (unknown tool, bad arguments) keeps the session.
        if exc.code != CONNECTION_CLOSED:
            await session.check_alive()
            if not session.closed:
                raise ToolError(
                    f"MCP server {server!r} refused the call of {tool!r}: {exc.error.message}"
                    + _NO_BACK_CHANNEL * (_ELICIT_METHOD in exc.error.message),
                    details={"server": server, "code": exc.code},
                ) from exc
        await session.close()
        raise _failed(server, tool, exc) from exc
    except Exception as exc:
        await session.close()
        raise _failed(server, tool, exc) from exc
    return result_of(result, server=server)


_ELICIT_METHOD = "'elicitation/create'"
_NO_BACK_CHANNEL = (
    " (the tool asked for input with a direct request, which this protocol version cannot "
    "carry: a server asks through an input request of the call, the SDK's Resolve/Elicit)"
)


def _failed(server: str, tool: str, exc: Exception) -> ToolError:
    what = describe(exc)
    return ToolError(
        f"MCP server {server!r} failed during the call of {tool!r} "
        f"(it is restarted for the next call): {what}"
        + _NO_BACK_CHANNEL
        * (_ELICIT_METHOD in what),
        details={"server": server, "exception": type(exc).__name__},
    )


def result_of(result: mcp_types.CallToolResult, *, server: str) -> Any:
    """A call's result as the step's JSON result; ToolError when the server says isError."""
    content = [block.model_dump(mode="json", exclude_none=True) for block in result.content]
    texts = [block.get("text", "") for block in content if block.get("type") == "text"]
    if result.is_error:
        message = "\n".join(texts) or "the tool reported an error"
        raise ToolError(f"MCP tool error from {server!r}: {message}", details={"content": content})
    if result.structured_content is not None:
        return result.structured_content
    if len(texts) == len(content):
        return {"text": "\n".join(texts)}
    return {"content": content}


_checks: set[asyncio.Task[None]] = set()


def _check_later(session: Session) -> None:
    """After a cancelled call: keep the session only if the server still answers."""
    task = asyncio.get_running_loop().create_task(session.check_alive())
    _checks.add(task)
    task.add_done_callback(_checks.discard)

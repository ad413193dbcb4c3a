"""What an MCP server offers: its tools and their annotations, and the flags those mean here.

MCP annotations are hints. ``readOnlyHint`` means the ``read_only`` flag (and a
read-only call can be repeated: ``idempotent`` too). ``destructiveHint`` means
``sensitive``; like the MCP specification, a tool that is not read-only counts as
destructive unless it says ``destructiveHint: false``, so an unannotated tool
needs approval under the "sensitive" policy. ``idempotentHint`` means ``idempotent``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from runs.tools.base import ToolError
from runs.tools.kinds.mcp.servers import ServerSpec
from runs.tools.kinds.mcp.sessions import Session, describe

LIST_SECONDS = 30.0
_MAX_PAGES = 100


@dataclass(frozen=True)
class RemoteTool:
    """One tool as the server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]
    # The server's annotations under their MCP names (readOnlyHint, ...), absent ones left out.
    annotations: dict[str, Any] = field(default_factory=dict)


def flags_from_annotations(hints: dict[str, Any]) -> dict[str, bool]:
    """``read_only``, ``sensitive`` and ``idempotent`` as the annotations mean them."""
    read_only = hints.get("readOnlyHint") is True
    return {
        "read_only": read_only,
        "sensitive": not read_only and hints.get("destructiveHint") is not False,
        "idempotent": read_only or hints.get("idempotentHint") is True,
    }


def list_remote_tools(server: ServerSpec) -> list[RemoteTool]:
    """Every tool the server lists (all pages), in a session of its own; ToolError on failure."""
    try:
        return asyncio.run(asyncio.wait_for(_list(server), LIST_SECONDS))
    except TimeoutError:
        raise ToolError(f"MCP server {server.name!r} did not list its tools in time") from None


async def _list(server: ServerSpec) -> list[RemoteTool]:
    session = Session(server)
    try:
        client = await session.opened()
        found: list[RemoteTool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                hints = (
                    tool.annotations.model_dump(by_alias=True, exclude_none=True)
                    if (tool.annotations)
                    else {}
                )
                found.append(
                    RemoteTool(
                        name=tool.name,
                        description=tool.description or "",
                        input_schema=dict(tool.input_schema),
                        annotations=hints,
                    )
                )
            cursor = page.next_cursor
            if not cursor:
                break
        return found
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(
            f"MCP server {server.name!r} failed to list its tools: {describe(exc)}"
        ) from exc
    finally:
        await session.close()

"""A small MCP server for the tests and the benchmark, on the SDK's server API.

``python server.py stdio`` serves over stdio; ``python server.py http PORT``
serves streamable HTTP on 127.0.0.1:PORT at /mcp. ``MCP_TEST_TOOLS=fewer``
serves only ``add`` (a server whose tools disappeared).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import anyio
from mcp.server.elicitation import ElicitationResult
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Elicit, Resolve
from mcp_types import ToolAnnotations
from pydantic import BaseModel


class Table(BaseModel):
    name: str


class Batch(BaseModel):
    table: str
    rows: int


def which_batch() -> Elicit[Batch]:
    return Elicit("Which table, and how many rows?", Batch)


server = MCPServer("test-server", log_level="ERROR")


@server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
def add(a: int, b: int) -> dict[str, int]:
    """Add two numbers."""
    return {"sum": a + b}


if os.environ.get("MCP_TEST_TOOLS") != "fewer":

    @server.tool(annotations=ToolAnnotations(destructive_hint=True))
    def drop(table: str) -> str:
        """Pretend to drop a table."""
        return f"dropped {table}"

    @server.tool()
    def fail(message: str) -> str:
        """Always fail with the message."""
        raise ToolError(message)

    @server.tool()
    async def wait(seconds: float) -> str:
        """Sleep without blocking the server."""
        await anyio.sleep(seconds)
        return "done"

    @server.tool()
    def hang(seconds: float) -> str:
        """Block the whole server (a hung server)."""
        time.sleep(seconds)
        return "woke"

    @server.tool()
    def crash() -> str:
        """End the server process at once."""
        os._exit(3)

    @server.tool()
    def secret_length() -> dict[str, int]:
        """How long the server's secret is (never the secret itself)."""
        return {"length": len(os.environ.get("MCP_TEST_SECRET", ""))}

    @server.tool()
    async def ask(ctx: Context) -> str:
        """Ask the client's user for a value (elicitation)."""
        answer = await ctx.elicit("Which table?", Table)
        return f"got {answer}"

    @server.tool()
    def request_meta(ctx: Context) -> dict[str, str]:
        """The text entries of the call's ``_meta`` (trace context, idempotency key)."""
        meta = dict(ctx.request_context.meta or {})
        return {key: value for key, value in meta.items() if isinstance(value, str)}

    @server.tool()
    async def copy_rows(
        batch: Annotated[ElicitationResult[Batch], Resolve(which_batch)],
    ) -> dict[str, object]:
        """Ask which rows to copy (an input request of the call: every protocol version)."""
        if batch.action != "accept":
            raise ToolError(f"the user answered {batch.action}: nothing copied")
        return {"copied": batch.data.rows, "table": batch.data.table}

    @server.tool()
    def pid() -> dict[str, int]:
        """The server's process id."""
        return {"pid": os.getpid()}


if __name__ == "__main__":
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))

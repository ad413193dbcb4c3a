"""One MCP session per server per worker loop, reused across steps and reopened after a failure.

A session lives in a task of its own (the SDK's transports are task-scoped
context managers): the task opens the client, hands it over, and holds it open
until the session is closed. Steps call through it concurrently.

After a call ends badly the session is checked: a broken connection (the server
crashed, the pipe or HTTP stream ended) is dropped at once; after a cancelled
call (a timeout or the run's cancel) a ping must come back within
``PING_SECONDS``, or the server counts as hung and is dropped (a stdio server's
process group is killed). The next call opens a new session.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from contextlib import AsyncExitStack

from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from runs.dbthreads import in_db_thread
from runs.tools.base import ToolError
from runs.tools.kinds.mcp.elicitation import InFlight, answerer
from runs.tools.kinds.mcp.servers import ServerSpec, http_headers, load_server, stdio_arguments

PING_SECONDS = 2.0
CONNECT_SECONDS = 30.0
# The newest protocol both sides speak; "legacy" (the 2025 handshake) is what older servers get.
CONNECT_MODE = "auto"


class Session:
    """An open client to one server, owned by a task of its own."""

    def __init__(self, server: ServerSpec) -> None:
        self.server = server
        self.client: Client | None = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closing = asyncio.Event()
        self.closed = False
        # Its calls in flight: a request for input that names no call goes to the only one.
        self.in_flight = InFlight()
        self._task = asyncio.create_task(self._own(), name=f"mcp-session-{server.name}")

    async def _own(self) -> None:
        try:
            async with AsyncExitStack() as stack:
                self.client = await stack.enter_async_context(self._client(stack))
                self._opened.set_result(None)
                await self._closing.wait()
        except BaseException as exc:
            if not self._opened.done():
                self._opened.set_exception(
                    exc if isinstance(exc, Exception) else ToolError(repr(exc))
                )
        finally:
            self.closed = True
            self.client = None

    def _client(self, stack: AsyncExitStack) -> Client:
        if self.server.transport == "stdio":
            return Client(
                StdioServerParameters(**stdio_arguments(self.server)),
                mode=CONNECT_MODE,
                elicitation_callback=answerer(self.in_flight),
            )
        http = create_mcp_http_client(headers=http_headers(self.server))
        stack.push_async_callback(http.aclose)
        return Client(
            streamable_http_client(self.server.url, http_client=http),
            mode=CONNECT_MODE,
            elicitation_callback=answerer(self.in_flight),
        )

    async def opened(self) -> Client:
        """The client, once the handshake is done; ToolError when the server cannot be reached."""
        try:
            await asyncio.wait_for(asyncio.shield(self._opened), CONNECT_SECONDS)
        except TimeoutError:
            await self.close()
            raise ToolError(
                f"MCP server {self.server.name!r} did not answer the handshake"
            ) from None
        except ToolError:
            raise
        except Exception as exc:
            raise ToolError(
                f"cannot connect to MCP server {self.server.name!r}: {describe(exc)}"
            ) from exc
        assert self.client is not None
        return self.client

    async def close(self) -> None:
        """End the session: the stdio server is stopped, the HTTP session ended."""
        self.closed = True
        self._closing.set()
        if not self._opened.done():
            self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    async def check_alive(self) -> None:
        """Close the session unless the server answers a ping in time."""
        client = self.client
        try:
            if client is None:
                raise ToolError("not open")
            await asyncio.wait_for(client.send_ping(), PING_SECONDS)
        except Exception:
            await self.close()


_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Session]] = (
    weakref.WeakKeyDictionary()
)
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


async def session_for(name: str) -> Session:
    """This loop's open session to the server ``name``, opening one if needed."""
    loop = asyncio.get_running_loop()
    pool = _pools.setdefault(loop, {})
    session = pool.get(name)
    if session is not None and not session.closed:
        return session
    async with _locks.setdefault(loop, {}).setdefault(name, asyncio.Lock()):
        session = pool.get(name)
        if session is None or session.closed:
            server = await in_db_thread(lambda: load_server(name))
            session = pool[name] = Session(server)
    return session


async def close_all() -> None:
    """Close every session of this loop (the worker is stopping; tests)."""
    pool = _pools.pop(asyncio.get_running_loop(), {})
    for session in pool.values():
        await session.close()


def describe(exc: BaseException) -> str:
    """An exception as one line, the first of a group's members when it is a group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

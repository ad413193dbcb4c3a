"""The ``/mcp`` ASGI endpoint: token authentication in front of the SDK's streamable HTTP app.

1. The ``Host`` must be one of ``ALLOWED_HOSTS`` (what Django checks for its pages).
2. ``Authorization: Bearer pw_...`` must be an active personal API token (401
   otherwise) of a user who may see runs (403 otherwise); each tool checks its
   own role on top (``tools.py``).
3. The SDK's app serves the request statelessly (one short-lived server session
   per request, JSON responses), so no request ever runs as another caller. Its
   session manager is started on first use, on the serving loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from runs.dbthreads import in_db_thread
from runs.mcp_server.tools import USER_KEY, register
from runs.permissions import can_view_runs
from runs.tokens import api_token_authenticate

PATH = "/mcp"
INSTRUCTIONS = (
    "plannerweb runs plans of tool calls with human review. Call list_tools, write a plan, "
    "check it with validate_plan, submit it with submit_plan (or let plannerweb plan with "
    "plan_task), then follow it with run_status or wait_for_run."
)


class McpEndpoint:
    """An ASGI app for ``/mcp``; see the module docstring."""

    def __init__(self) -> None:
        self.server = MCPServer("plannerweb", instructions=INSTRUCTIONS, log_level="WARNING")
        register(self.server)
        self.app = self.server.streamable_http_app(
            streamable_http_path=PATH,
            stateless_http=True,
            json_response=True,
            # Hosts are checked here against ALLOWED_HOSTS, as for every page.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self._started: asyncio.Future[None] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host, _ = split_domain_port(headers.get("host", ""))
        if not validate_host(host, settings.ALLOWED_HOSTS):
            await _reply(send, 400, "bad_host", "This host is not served.")
            return
        scheme, _, token = headers.get("authorization", "").partition(" ")
        found = None
        if scheme.lower() == "bearer" and token.strip():
            found = await in_db_thread(lambda: _authenticate(token.strip()))
        if found is None:
            await _reply(send, 401, "not_authenticated", "Send Authorization: Bearer <API token>.")
            return
        user, allowed = found
        if not allowed:
            await _reply(send, 403, "forbidden", "Your role does not allow you to use plannerweb.")
            return
        await self._start()
        await self.app({**scope, USER_KEY: user}, receive, send)

    async def _start(self) -> None:
        """Run the SDK's session manager in a task of its own, once."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_future()
            self._keeper = asyncio.create_task(self._keep())
        await asyncio.shield(self._started)

    async def _keep(self) -> None:
        assert self._started is not None
        async with self.server.session_manager.run():
            self._started.set_result(None)
            await asyncio.Event().wait()


def _authenticate(token: str) -> tuple[Any, bool] | None:
    """The token's user and whether they may use plannerweb (their roles read now, and kept)."""
    user = api_token_authenticate(token)
    return None if user is None else (user, can_view_runs(user))


async def _reply(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="plannerweb"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


endpoint = McpEndpoint()

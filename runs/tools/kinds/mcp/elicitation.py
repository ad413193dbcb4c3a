"""A server's request for user input during a call (elicitation), handed to the step's asker.

Which call asks: the SDK runs the callback in the calling task's context when it
can (a 2026-07-28 connection, where the server returns the question as an input
request of the call; a streamable HTTP connection, where the request arrives on
the call's own stream), so ``_calling`` names the call exactly. Over a stdio
connection of an older protocol the request carries no link to its call: it is
the session's only call in flight, or it is refused (the call then fails).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import mcp_types
from mcp.client.session import ClientRequestContext

from runs.tools.asking import Asker, Question, current_asker


@dataclass(eq=False)
class Calling:
    """One call in flight on a session: its tool, and who answers its questions."""

    server: str
    tool: str
    asker: Asker | None


@dataclass
class InFlight:
    """The calls in flight on one session (for requests that name no call)."""

    calls: list[Calling] = field(default_factory=list)

    @contextlib.contextmanager
    def call(self, server: str, tool: str) -> Iterator[None]:
        """Register the call for its duration, with the step's asker, if any."""
        calling = Calling(server, tool, current_asker.get())
        self.calls.append(calling)
        token = _calling.set(calling)
        try:
            yield
        finally:
            _calling.reset(token)
            self.calls.remove(calling)


_calling: ContextVar[Calling | None] = ContextVar("mcp_calling", default=None)


def _refuse(message: str) -> mcp_types.ErrorData:
    return mcp_types.ErrorData(code=mcp_types.INVALID_REQUEST, message=message)


def answerer(in_flight: InFlight) -> Any:
    """The session's ``elicitation_callback``: finds the asking call and awaits its asker."""

    async def answer(
        context: ClientRequestContext, params: mcp_types.ElicitRequestParams
    ) -> mcp_types.ElicitResult | mcp_types.ErrorData:
        calling = _calling.get()
        if calling is None and len(in_flight.calls) == 1:
            calling = in_flight.calls[0]
        if calling is None:
            many = len(in_flight.calls) > 1
            return _refuse(
                "plannerweb cannot tell which of its concurrent calls asks for input "
                "(an older protocol over stdio names none)"
                if many
                else "plannerweb answers requests for input only during a step's tool call"
            )
        if calling.asker is None:
            return _refuse(
                "plannerweb answers requests for input only during a run's step "
                "(this call has no reviewer to ask)"
            )
        if not isinstance(params, mcp_types.ElicitRequestFormParams):
            return _refuse(
                "plannerweb answers form requests only; URL requests (elicit_url) are not supported"
            )
        question = Question(
            server=calling.server,
            tool=calling.tool,
            message=params.message,
            schema=dict(params.requested_schema),
        )
        got = await calling.asker(question)
        return mcp_types.ElicitResult(
            action=got.action, content=got.content if got.action == "accept" else None
        )

    return answer

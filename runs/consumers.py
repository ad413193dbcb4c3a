"""Websocket consumers: a run's live transcript and the runs list, for users whose role may see runs.

Both answer the client's heartbeat (``{"type": "ping"}`` → ``{"type": "pong"}``)
so a page notices a dead connection and reconnects.
"""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from runs.models import Run, TranscriptEvent
from runs.permissions import can_view_runs
from runs.publish import (
    RUNS_GROUP,
    Framed,
    batches,
    event_frame,
    event_message,
    events_frame,
    run_group,
)
from runs.textdata import TextDataError, parse_json

# Close codes the client treats as final (it stops reconnecting).
FORBIDDEN = 4403
NOT_FOUND = 4404


# Messages whose handlers do no ORM work outside ``database_sync_to_async`` (which
# closes stale connections itself): delivered without channels' per-message
# ``aclose_old_connections``, a hop through the one thread-sensitive executor that
# otherwise serialises every delivery to every client (bench/events.py: seconds of
# latency at 200 clients).
_HOT_MESSAGES = frozenset({"run.events", "runs.changed", "reviews.changed", "websocket.receive"})


class HeartbeatConsumer(AsyncJsonWebsocketConsumer):
    """Answers pings; ignores anything else a client sends (it has nothing else to say)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in _HOT_MESSAGES:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        # Binary or garbled frames are ignored, never a crash of the connection.
        try:
            content = parse_json(text_data) if text_data else None
        except TextDataError:
            return
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.on_ping()
            await self.send_json({"type": "pong", **self.heartbeat_state()})

    async def on_ping(self) -> None:
        """Work to do on each heartbeat, before the pong."""

    def heartbeat_state(self) -> dict[str, Any]:
        return {}


class RunEventsConsumer(HeartbeatConsumer):
    """Joins ``run-<id>``; on connect, replays events after ``?after=<seq>`` from the database.

    Sends each seq once and in order, as websocket text frames holding one event
    (``{"type": "event", ...}``) or several consecutive ones (``{"type": "events",
    "events": [...]}``, see ``runs.publish.events_frame``).
    """

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not await database_sync_to_async(can_view_runs)(user):
            await self.close(code=FORBIDDEN)
            return
        if not await _run_exists(self.run_id):
            await self.close(code=NOT_FOUND)
            return
        self.group = run_group(self.run_id)
        # Join first, then replay: an event committed in between arrives twice
        # at worst, and ``_send_range`` drops any seq already sent.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self.last_sent = _after_from_query(self.scope.get("query_string", b""))
        await self._send_from_database()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_events(self, message: dict[str, Any]) -> None:
        if "text" in message:  # the publisher's: consecutive seqs first..last, one text
            await self._send_range(message["first"], message["last"], message["text"])
            return
        # Plain event dicts are accepted too, one at a time.
        for event in message.get("events") or ():
            await self._send_range(event["seq"], event["seq"], event_frame(event))

    def heartbeat_state(self) -> dict[str, Any]:
        # The client compares: a pong naming a seq it never got means it missed one.
        return {"seq": getattr(self, "last_sent", 0)}

    async def on_ping(self) -> None:
        # A lost group message is noticed at the next event's seq gap; a lost *last* one has
        # no next event. Each heartbeat (one indexed query per client every 15 s) sends what
        # was committed and never arrived, so the page catches up within a heartbeat.
        await self._send_from_database()

    async def _send_range(self, first: int, last: int, text: str) -> None:
        """Send events ``first..last`` once and in order: what was sent already is dropped, a gap
        (or a range overlapping what was sent) is filled from the database instead."""
        if last <= self.last_sent:
            return
        if first == self.last_sent + 1:
            self.last_sent = last
            await self.send(text_data=text)
            return
        # Every event up to ``last`` is committed (it is published after its commit).
        await self._send_from_database(before=last + 1)

    async def _send_from_database(self, before: int | None = None) -> None:
        """Send the stored events after ``last_sent`` (and before ``before``), in batches."""
        events = await _events_after(self.run_id, self.last_sent, before=before)
        stored = [Framed(e["seq"], event_frame(e)) for e in events]
        for batch in batches(stored):  # the stored seqs are consecutive: cut by size only
            self.last_sent = batch[-1].seq
            await self.send(text_data=events_frame([e.frame for e in batch]))


class RunListConsumer(HeartbeatConsumer):
    """Joins the runs-list group: tells list pages which runs were created or changed status."""

    async def connect(self) -> None:
        if not await database_sync_to_async(can_view_runs)(self.scope.get("user")):
            await self.close(code=FORBIDDEN)
            return
        self.joined = True
        await self.channel_layer.group_add(RUNS_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if getattr(self, "joined", False):
            await self.channel_layer.group_discard(RUNS_GROUP, self.channel_name)

    async def runs_changed(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "changed", "runs": message["runs"]})


def _after_from_query(raw: bytes) -> int:
    from urllib.parse import parse_qs

    values = parse_qs(raw.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0


@database_sync_to_async
def _run_exists(run_id: int) -> bool:

    return Run.objects.filter(pk=run_id).exists()


@database_sync_to_async
def _events_after(run_id: int, after: int, before: int | None = None) -> list[dict[str, Any]]:

    events = TranscriptEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")
    if before is not None:
        events = events.filter(seq__lt=before)
    return [event_message(e) for e in events]

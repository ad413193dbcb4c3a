"""Websocket consumer: a run's live transcript, for users whose role may see runs."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from runs.permissions import can_view_runs
from runs.publish import event_message, run_group


class RunEventsConsumer(AsyncJsonWebsocketConsumer):
    """Joins ``run-<id>``; on connect, replays events after ``?after=<seq>`` from the database."""

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        if not await database_sync_to_async(can_view_runs)(user):
            await self.close(code=4403)
            return
        if not await _run_exists(self.run_id):
            await self.close(code=4404)
            return
        self.group = run_group(self.run_id)
        # Join first, then replay: an event committed in between arrives twice
        # at worst, and the client drops any seq it already has.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        after = _after_from_query(self.scope.get("query_string", b""))
        self.last_sent = after
        for event in await _events_after(self.run_id, after):
            await self._send_event(event)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def run_events(self, message: dict[str, Any]) -> None:
        for event in message["events"]:
            await self._send_event(event)

    async def _send_event(self, event: dict[str, Any]) -> None:
        """Send each seq once and in order: duplicates are dropped, gaps filled from the database."""
        seq = event["seq"]
        if seq <= self.last_sent:
            return
        if seq > self.last_sent + 1:
            for missed in await _events_after(self.run_id, self.last_sent, before=seq):
                self.last_sent = missed["seq"]
                await self.send_json({"type": "event", **missed})
        self.last_sent = seq
        await self.send_json({"type": "event", **event})


def _after_from_query(raw: bytes) -> int:
    from urllib.parse import parse_qs

    values = parse_qs(raw.decode("latin-1")).get("after", ["0"])
    try:
        return max(0, int(values[0]))
    except ValueError:
        return 0


@database_sync_to_async
def _run_exists(run_id: int) -> bool:
    from runs.models import Run

    return Run.objects.filter(pk=run_id).exists()


@database_sync_to_async
def _events_after(run_id: int, after: int, before: int | None = None) -> list[dict[str, Any]]:
    from runs.models import TranscriptEvent

    events = TranscriptEvent.objects.filter(run_id=run_id, seq__gt=after).order_by("seq")
    if before is not None:
        events = events.filter(seq__lt=before)
    return [event_message(e) for e in events]

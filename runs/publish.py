"""Send committed transcript events to the run's channel-layer group, off the commit path.

Callers hand over events *after* their transaction committed; ``submit`` never
blocks. Delivery happens on one event loop, in order:

- the serving process's own loop when one is bound (embedded mode: the
  in-memory channel layer is only safe to use from the loop its consumers run on);
- otherwise a small daemon thread with its own loop (workers, CLI, Redis layer).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


def event_message(event: Any) -> dict[str, Any]:
    """The websocket message for one TranscriptEvent (row or equivalent object)."""
    return {
        "type": "run.event",
        "run": event.run_id,
        "seq": event.seq,
        "role": event.role,
        "kind": event.kind,
        "payload": event.payload,
        "at": event.created_at.isoformat(),
    }


class Publisher:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._own_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Queue[Any]] = (
            weakref.WeakKeyDictionary()
        )
        self._drainers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
            weakref.WeakKeyDictionary()
        )

    def bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver on ``loop`` from now on (the ASGI server's loop, set on its first call)."""
        with self._lock:
            if self._loop is None or not self._loop.is_running():
                self._loop = loop

    def _target_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is not None and self._loop.is_running() and not self._loop.is_closed():
                return self._loop
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="plannerweb-publisher", daemon=True
            )
            thread.start()
            self._loop, self._own_thread = loop, thread
            return loop

    def submit(self, run_id: int, events: Sequence[Any]) -> None:
        if not events:
            return
        messages = [event_message(e) for e in events]
        loop = self._target_loop()
        loop.call_soon_threadsafe(self._enqueue, loop, (run_id, messages))

    def _enqueue(
        self, loop: asyncio.AbstractEventLoop, item: tuple[int, list[dict[str, Any]]]
    ) -> None:
        # Runs on ``loop``: one queue and one drainer per loop keep events in commit order.
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = asyncio.Queue()
            self._drainers[loop] = loop.create_task(self._drain(queue))
        queue.put_nowait(item)

    async def _drain(self, queue: asyncio.Queue[tuple[int, list[dict[str, Any]]]]) -> None:
        while True:
            run_id, messages = await queue.get()
            await self._send(run_id, messages)
            queue.task_done()

    async def _send(self, run_id: int, messages: list[dict[str, Any]]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        group = run_group(run_id)
        for message in messages:
            try:
                await layer.group_send(group, message)
            except Exception:  # a broken broker must never break a run
                log.exception("could not publish event %s of run %s", message["seq"], run_id)


publisher = Publisher()

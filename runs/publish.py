"""Send committed transcript events to the run's channel-layer group, off the commit path.

Callers hand over events *after* their transaction committed; ``submit`` never
blocks. Delivery happens on one of these loops:

- the serving process's own loop when one is bound (embedded mode: the
  in-memory channel layer is only safe to use from the loop its consumers run on);
- else the caller's preferred loop (an executor's own loop: no extra thread wakes);
- else a small daemon thread with its own loop.

Events of one run may thus travel by different loops and arrive out of order;
the consumer restores the order (it fills any seq gap from the database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any

from channels.layers import get_channel_layer

from runs.events import event_summary, event_summary_json

log = logging.getLogger(__name__)


def run_group(run_id: int) -> str:
    return f"run-{run_id}"


# Every runs-list page listens here: a run was created or changed status.
RUNS_GROUP = "runs"
# Event kinds that change what the runs list shows.
LIST_KINDS = frozenset({"run.created", "run.status"})


# Every review-queue page listens here: a review item opened, was claimed or decided.
REVIEWS_GROUP = "reviews"
REVIEW_KIND_PREFIX = "review."


def carries_payload(kind: str) -> bool:
    """Whether the runs list or the review queue reads this kind's payload (most kinds: no)."""
    return kind in LIST_KINDS or kind.startswith(REVIEW_KIND_PREFIX)


@dataclass(slots=True)  # not frozen: a frozen init costs 4x, on the commit path
class Outgoing:
    """One committed event as publishing needs it: its payload as stored (compact JSON text).

    The websocket frame is built from it by the publisher (``framed``), after the
    writer's steps started, not inside its commit. ``payload`` is kept only for
    the kinds other groups read (``carries_payload``).
    """

    seq: int
    role: str
    kind: str
    payload_json: str
    at: str  # ISO time of the commit
    payload: dict[str, Any] | None = None
    summary: str | None = None  # the event's one line, when its writer had the event at hand

    def framed(self, run_id: int) -> Framed:
        return Framed(
            self.seq,
            frame_from_json(
                run_id, self.seq, self.role, self.kind, self.payload_json, self.at, self.summary
            ),
        )


@dataclass(slots=True)
class Framed:
    """One event's websocket text frame (``event_frame``'s), ready to send or to batch."""

    seq: int
    frame: str


def review_changes(run_id: int, events: Sequence[Outgoing]) -> list[dict[str, Any]]:
    """What review-queue pages need to hear about a batch of a run's events (often nothing).

    Every change of a review item writes a ``review.*`` transcript event in the same
    transaction (runs/lifecycle/reviews.py, runs/lifecycle/escalations.py), so the queue is told
    after commit through the same publisher, with no extra call in the services.
    """
    return [
        {
            "item": (e.payload or {}).get("item_id"),
            "run": run_id,
            "seq": e.seq,
            "kind": e.kind,
            "status": (e.payload or {}).get("status", "open"),
        }
        for e in events
        if e.kind.startswith(REVIEW_KIND_PREFIX)
    ]


def list_changes(run_id: int, events: Sequence[Outgoing]) -> list[dict[str, Any]]:
    """What the runs list needs to hear about a batch of a run's events (often nothing)."""
    return [
        {
            "run": run_id,
            "seq": e.seq,
            "kind": e.kind,
            "status": (e.payload or {}).get("to_status", "queued"),
        }
        for e in events
        if e.kind in LIST_KINDS
    ]


def event_message(event: Any) -> dict[str, Any]:
    """The client-facing form of one TranscriptEvent (row or equivalent object), with its summary."""
    return {
        "run": event.run_id,
        "seq": event.seq,
        "role": event.role,
        "kind": event.kind,
        "summary": event_summary(event.kind, event.payload),
        "payload": event.payload,
        "at": event.created_at.isoformat(),
    }


def event_frame(message: dict[str, Any]) -> str:
    """The websocket text frame for one event, as the run consumer sends it."""
    return json.dumps({"type": "event", **message}, ensure_ascii=False, separators=(",", ":"))


def events_frame(frames: Sequence[str]) -> str:
    """One websocket text frame for consecutive events: the event's own frame when alone, else a
    batch ``{"type":"events","events":[...]}`` whose items are those frames, in seq order.

    A batch costs a client one message (one Daphne/autobahn encode, one socket write, one
    client-side parse) instead of one per event: with 200 clients following a run, per-message
    work is what the serving loop spends its time on.
    """
    if len(frames) == 1:
        return frames[0]
    return '{"type":"events","events":[' + ",".join(frames) + "]}"


# Bounds of one websocket message of several events: a reconnect after a busy hour is a few
# large messages, not thousands of small ones, nor one that a client refuses as too big
# (Python's ``websockets`` refuses messages over 1 MiB by default).
BATCH_MAX_EVENTS = 200
BATCH_MAX_CHARS = 256 * 1024


def batches(events: Sequence[Framed]) -> list[list[Framed]]:
    """``events`` cut where the seq does not go up by exactly one (rare: two delivery loops)
    and where a batch would pass ``BATCH_MAX_EVENTS`` or ``BATCH_MAX_CHARS`` (a lone event
    larger than that still goes alone)."""
    cut: list[list[Framed]] = []
    size = 0
    for e in events:
        if (
            cut
            and e.seq == cut[-1][-1].seq + 1
            and len(cut[-1]) < BATCH_MAX_EVENTS
            and size + len(e.frame) <= BATCH_MAX_CHARS
        ):
            cut[-1].append(e)
            size += len(e.frame)
        else:
            cut.append([e])
            size = len(e.frame)
    return cut


def run_events_message(events: Sequence[Framed]) -> dict[str, Any]:
    """The group message for consecutive events: their seq range and one ready websocket text."""
    return {
        "type": "run.events",
        "first": events[0].seq,
        "last": events[-1].seq,
        "text": events_frame([e.frame for e in events]),
    }


def frame_from_json(
    run_id: int, seq: int, role: str, kind: str, payload: str, at: str, summary: str | None = None
) -> str:
    """``event_frame``'s frame for a payload that is compact JSON text already (no re-encoding).

    ``role`` and ``kind`` are identifiers (``TranscriptEvent.Role``, the events' ``kind``
    literals) and ``at`` an ISO time: none needs escaping. Without ``summary``, it is read
    from the payload text by pydantic-core (a few µs, once per event, not per client).
    """
    line = encode_basestring(summary if summary is not None else event_summary_json(kind, payload))
    return (
        f'{{"type":"event","run":{run_id},"seq":{seq},"role":"{role}","kind":"{kind}",'
        f'"summary":{line},"payload":{payload},"at":"{at}"}}'
    )


def outgoing_rows(
    events: Sequence[Any], summaries: Sequence[str | None] | None = None
) -> list[Outgoing]:
    """``Outgoing`` for TranscriptEvent rows (the ORM write path), with the events' summaries.

    The writer passes the summaries of the event objects it stored; without them
    each frame reads its line back from the payload.
    """
    return [
        Outgoing(
            e.seq,
            e.role,
            e.kind,
            json.dumps(e.payload, ensure_ascii=False, separators=(",", ":")),
            e.created_at.isoformat(),
            e.payload if carries_payload(e.kind) else None,
            summary,
        )
        for e, summary in zip(events, summaries or [None] * len(events), strict=True)
    ]


class Publisher:
    def __init__(self) -> None:
        self._bound: asyncio.AbstractEventLoop | None = None
        self._fallback: asyncio.AbstractEventLoop | None = None
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
            if self._bound is None or not self._bound.is_running():
                self._bound = loop

    def _target_loop(
        self, preferred: asyncio.AbstractEventLoop | None = None
    ) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._bound is not None and self._bound.is_running():
                return self._bound
            if preferred is not None and preferred.is_running():
                return preferred
            if self._fallback is None or self._fallback.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(
                    target=loop.run_forever, name="plannerweb-publisher", daemon=True
                ).start()
                self._fallback = loop
            return self._fallback

    def submit(
        self,
        run_id: int,
        events: Sequence[Outgoing],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Queue events (already committed, see ``Outgoing``) for delivery; never blocks."""
        if not events:
            return
        messages = list(events)
        target = self._target_loop(loop)
        if target is loop and _running_loop() is loop:
            # Already on that loop's thread: no self-pipe wake needed.
            self._enqueue(target, (run_id, messages))
            return
        try:
            target.call_soon_threadsafe(self._enqueue, target, (run_id, messages))
        except RuntimeError:  # that loop closed meanwhile: fall back to our own thread
            with self._lock:
                if self._bound is target:
                    self._bound = None
            target = self._target_loop()
            target.call_soon_threadsafe(self._enqueue, target, (run_id, messages))

    async def flush(self) -> None:
        """Wait until events queued for delivery on the running loop have been sent."""
        queue = self._queues.get(asyncio.get_running_loop())
        if queue is not None:
            await queue.join()

    def _enqueue(self, loop: asyncio.AbstractEventLoop, item: tuple[int, list[Outgoing]]) -> None:
        # Runs on ``loop``: one queue and one drainer per loop keep events in commit order.
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = asyncio.Queue()
            self._drainers[loop] = loop.create_task(self._drain(queue))
        queue.put_nowait(item)

    async def _drain(self, queue: asyncio.Queue[tuple[int, list[Outgoing]]]) -> None:
        while True:
            batches = [await queue.get()]
            # Commits that queued up while the last send was in flight go out together: one
            # group message per run instead of one per commit (with a broker, each group
            # message costs a round trip per connected client). Nothing waits to be batched.
            while not queue.empty():
                batches.append(queue.get_nowait())
            try:
                for run_id, messages in _merge(batches):
                    await self._send(run_id, messages)
            finally:
                for _ in batches:
                    queue.task_done()

    async def _send(self, run_id: int, events: list[Outgoing]) -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        # Let the steps this commit just started reach their tools first: encoding
        # hundreds of frames is not worth delaying a plan's critical path for.
        await asyncio.sleep(0)
        # One group message per batch of consecutive seqs (normally all of them): 500 step
        # changes are one broker round trip, and one websocket message per client. Each event
        # was encoded once by its writer and the batch text is built here once, not once per
        # connected client in every consumer.
        try:
            framed = [e.framed(run_id) for e in events]
            for batch in batches(framed):
                await layer.group_send(run_group(run_id), run_events_message(batch))
            changes = list_changes(run_id, events)
            if changes:
                await layer.group_send(RUNS_GROUP, {"type": "runs.changed", "runs": changes})
            reviews = review_changes(run_id, events)
            if reviews:
                await layer.group_send(REVIEWS_GROUP, {"type": "reviews.changed", "items": reviews})
        except Exception:  # a broken broker must never break a run
            log.exception("could not publish events %s.. of run %s", events[0].seq, run_id)


def _merge(
    batches: list[tuple[int, list[Outgoing]]],
) -> list[tuple[int, list[Outgoing]]]:
    """Events of consecutive batches joined per run, runs and events kept in commit order."""
    merged: dict[int, list[Outgoing]] = {}
    for run_id, messages in batches:
        merged.setdefault(run_id, []).extend(messages)
    return list(merged.items())


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


publisher = Publisher()

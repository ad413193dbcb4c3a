"""The embedded default's channel layer: channels' in-memory layer, cheap to fan out.

``channels.layers.InMemoryChannelLayer`` costs four things per group member
on every ``group_send`` that this layer does not pay:

1. it sweeps every channel for expired messages on each ``receive`` and
   ``group_send``: with N clients following a run, one event costs O(N²)
   (measured: ~150-300 µs per delivered message at 200 clients). Messages
   expire after a minute, so sweeping at most once a second changes nothing
   observable and makes delivery O(N);
2. it starts an asyncio task per member to ``send`` (and gathers them with
   ``as_completed``), where a plain ``put_nowait`` into each queue is enough:
   nothing in ``send`` awaits;
3. it deep-copies the message once per member (it stands in for a broker's
   serialisation). Here the group message is copied once and every member
   receives that one copy: consumers only read their messages, and a run's
   event frames are strings already;
4. its ``receive`` builds a new ``asyncio.Queue`` on every call (the default of a
   ``setdefault``) and drops the channel's queue whenever it runs empty, so a
   consumer that keeps up builds one per message (a fifth of the serving loop's
   samples at 200 clients). Here a channel keeps its queue while its consumer
   waits on it; it is dropped when that wait is cancelled (the consumer exits)
   with nothing queued, or by the expiry sweep as before.
"""

from __future__ import annotations

import asyncio
import time
from copy import deepcopy
from typing import Any

from channels.layers import InMemoryChannelLayer

SWEEP_INTERVAL_SECONDS = 1.0


class EmbeddedChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_SECONDS
        super()._clean_expired()

    async def receive(self, channel: str) -> dict[str, Any]:
        """The next message on ``channel``; its queue is kept while the channel is in use."""
        self.require_valid_channel_name(channel)
        self._clean_expired()
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
        try:
            _, message = await queue.get()
        except asyncio.CancelledError:
            # The consumer is leaving (channels cancels its receive on exit): forget the channel.
            if queue.empty() and self.channels.get(channel) is queue:
                del self.channels[channel]
            raise
        return message

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        """Put one shared copy of ``message`` into every member's queue (see the module doc)."""
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        self._clean_expired()
        members = self.groups.get(group)
        if not members:
            return
        shared = deepcopy(message)  # the sender may reuse its dict; members never write to it
        expires = time.time() + self.expiry
        for channel in list(members):
            queue = self.channels.get(channel)
            if queue is None:
                queue = self.channels[channel] = asyncio.Queue(maxsize=self.get_capacity(channel))
            if not queue.full():  # as in channels' layer: a full channel misses group messages
                queue.put_nowait((expires, shared))

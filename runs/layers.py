"""The embedded default's channel layer: channels' in-memory layer without its quadratic sweep.

``channels.layers.InMemoryChannelLayer`` sweeps every channel for expired
messages on each ``receive`` and ``group_send``: with N clients following a
run, one event costs O(N²) (measured: ~150-300 µs per delivered message at
200 clients, most of the server's CPU in ``bench/events.py``). Messages
expire after a minute, so sweeping at most once a second changes nothing
observable and makes delivery O(N).
"""

from __future__ import annotations

import time

from channels.layers import InMemoryChannelLayer

SWEEP_INTERVAL_SECONDS = 1.0


class EmbeddedChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._next_sweep = 0.0

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_SECONDS
        super()._clean_expired()

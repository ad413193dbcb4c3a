"""The embedded channel layer: one shared copy per group message, queues kept while in use."""

from __future__ import annotations

import asyncio

import pytest

from runs.layers import EmbeddedChannelLayer

pytestmark = pytest.mark.asyncio


async def test_every_member_of_a_group_gets_the_message_as_it_was_sent() -> None:
    layer = EmbeddedChannelLayer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("run-1", channel)
    message = {"type": "run.events", "first": 1, "last": 2, "text": "[1,2]"}
    await layer.group_send("run-1", message)
    message["text"] = "changed after sending"  # the sender's dict is not what members get
    got = [await asyncio.wait_for(layer.receive(c), 1) for c in channels]
    assert got == [{"type": "run.events", "first": 1, "last": 2, "text": "[1,2]"}] * 3
    assert all(g is got[0] for g in got)  # one copy, shared


async def test_a_group_send_reaches_a_member_already_waiting_and_keeps_its_queue() -> None:
    layer = EmbeddedChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("run-1", channel)
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    queue = layer.channels[channel]
    await layer.group_send("run-1", {"type": "run.events", "n": 1})
    assert await asyncio.wait_for(waiting, 1) == {"type": "run.events", "n": 1}
    assert layer.channels[channel] is queue  # not rebuilt for the next message


async def test_a_cancelled_receive_forgets_its_empty_channel() -> None:
    layer = EmbeddedChannelLayer()
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0)
    assert channel in layer.channels
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert channel not in layer.channels


async def test_a_full_channel_misses_group_messages_without_failing_the_others() -> None:
    layer = EmbeddedChannelLayer(capacity=1)
    full, free = await layer.new_channel(), await layer.new_channel()
    for channel in (full, free):
        await layer.group_add("run-1", channel)
    await layer.group_send("run-1", {"type": "run.events", "n": 1})
    assert await layer.receive(free) == {"type": "run.events", "n": 1}
    await layer.group_send("run-1", {"type": "run.events", "n": 2})  # ``full`` has no room
    assert await layer.receive(free) == {"type": "run.events", "n": 2}
    assert await layer.receive(full) == {"type": "run.events", "n": 1}
    assert layer.channels[full].empty()

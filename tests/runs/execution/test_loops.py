"""Each executing thread keeps one event loop from run to run, closes it when it ends, and collects garbage while it idles."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import selectors
import threading
import time
from collections.abc import Iterator

import pytest

from runs.execution.loops import (
    ExecutorEventLoop,
    PreciseEpollSelector,
    collect_while_idle,
    run_in_thread_loop,
    thread_loop,
)

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")


async def loop_and_mark(value: str) -> tuple[asyncio.AbstractEventLoop, str]:
    seen = marker.get()
    marker.set(value)  # must not leak into the next run
    return asyncio.get_running_loop(), seen


def test_runs_on_one_thread_share_its_loop_but_not_their_context() -> None:
    first, seen_first = run_in_thread_loop(loop_and_mark("one"))
    second, seen_second = run_in_thread_loop(loop_and_mark("two"))
    assert first is second is thread_loop()
    assert not first.is_closed() and not first.is_running()
    assert (seen_first, seen_second) == ("unset", "unset")


def test_a_thread_that_ends_closes_its_loop_and_its_leftover_tasks() -> None:
    got: dict[str, object] = {}

    async def leave_a_task_behind() -> None:
        got["task"] = asyncio.get_running_loop().create_task(asyncio.sleep(3600))

    def work() -> None:
        run_in_thread_loop(leave_a_task_behind())
        got["loop"] = thread_loop()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=10)
    gc.collect()
    loop, task = got["loop"], got["task"]
    assert isinstance(loop, asyncio.AbstractEventLoop) and loop.is_closed()
    assert isinstance(task, asyncio.Task) and task.cancelled()
    assert thread_loop() is not loop  # this thread has a loop of its own


def test_the_precise_selector_waits_its_timeout_and_still_reports_ready_descriptors() -> None:

    selector = PreciseEpollSelector()
    read_end, write_end = os.pipe()
    try:
        selector.register(read_end, selectors.EVENT_READ, "pipe")
        started = time.monotonic()
        assert selector.select(0.0015) == []
        assert time.monotonic() - started >= 0.0015
        os.write(write_end, b"x")
        started = time.monotonic()
        ready = selector.select(5)
        assert time.monotonic() - started < 1
        assert [(key.data, events) for key, events in ready] == [("pipe", selectors.EVENT_READ)]
    finally:
        selector.close()
        os.close(read_end)
        os.close(write_end)


def test_executor_loops_use_the_precise_selector_where_epoll_is() -> None:

    loop = run_in_thread_loop(_running_loop())
    if hasattr(selectors, "EpollSelector"):
        assert isinstance(loop._selector, PreciseEpollSelector)  # type: ignore[attr-defined]


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


# -- garbage collection while idle ----------------------------------------------------------
@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations collected meanwhile; the allocator's own collections are held off."""
    seen: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.set_threshold(10**9, *thresholds[1:])
    gc.callbacks.append(note)
    try:
        yield seen
    finally:
        gc.callbacks.remove(note)
        gc.set_threshold(*thresholds)


def young_garbage(n: int = 2000) -> list[list[int]]:
    return [[i] for i in range(n)]  # each list is tracked by the collector


def test_the_executor_loop_collects_young_garbage_while_it_waits(collections: list[int]) -> None:
    async def allocate_then_wait(seconds: float) -> int:
        kept = young_garbage()
        before = len(collections)
        await asyncio.sleep(seconds)
        del kept
        return len(collections) - before

    loop = ExecutorEventLoop()
    try:
        assert loop.run_until_complete(allocate_then_wait(0.02)) == 1
        # A wait too short for a collection (the next timer is due sooner) gets none.
        assert loop.run_until_complete(allocate_then_wait(0.0005)) == 0
    finally:
        loop.close()


def test_idle_collections_pick_the_generation_cpython_would_and_skip_small_ones(
    collections: list[int],
) -> None:
    gc.collect()
    assert not collect_while_idle(None)  # few young objects: not worth a pass
    kept = young_garbage()
    assert collect_while_idle(0.01) and collections[-1] == 0
    for _ in range(gc.get_threshold()[1]):  # gen-0 collections count towards gen 1
        gc.collect(0)
    kept += young_garbage()
    assert collect_while_idle(0.01) and collections[-1] == 1
    for _ in range(gc.get_threshold()[2]):  # gen-1 collections count towards gen 2
        gc.collect(1)
    for _ in range(gc.get_threshold()[1]):
        gc.collect(0)
    kept += young_garbage()
    assert collect_while_idle(0.01) and collections[-1] == 1  # a full one needs a long wait
    for _ in range(gc.get_threshold()[1]):
        gc.collect(0)
    kept += young_garbage()
    assert collect_while_idle(None) and collections[-1] == 2
    kept += young_garbage()
    assert not collect_while_idle(0.001)  # the next timer is due too soon
    assert collections[-1] == 2
    del kept

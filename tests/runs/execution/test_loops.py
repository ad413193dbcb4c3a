"""Each executing thread keeps one event loop from run to run, and closes it when it ends."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import selectors
import threading
import time

from runs.execution.loops import PreciseEpollSelector, run_in_thread_loop, thread_loop

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

"""Each executing thread keeps one event loop from run to run, and closes it when it ends."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import threading

from runs.execution.loops import run_in_thread_loop, thread_loop

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

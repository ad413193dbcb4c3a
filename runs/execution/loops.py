"""One event loop per executing thread, kept from run to run.

``asyncio.run()`` makes a loop and closes it again for every run, which cost
~0.5 ms of each run's critical path on the target machine (selector and
self-pipe set up; every task cancelled, the loop closed). A worker thread runs
one run at a time, so it keeps one ``asyncio.Runner`` instead. Each run still
starts from a fresh copy of the thread's context, as under ``asyncio.run()``,
and the loop is closed when its thread ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _Owned:
    """This thread's runner; its loop is closed when the thread ends and drops its locals."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()

    def __del__(self) -> None:
        # Not Runner.close(): it shuts the default executor down from a new thread, which
        # never starts while the interpreter finalizes. Cancel what is left, then close.
        with contextlib.suppress(Exception):
            loop = self.runner.get_loop()
            if not sys.is_finalizing():
                pending = asyncio.all_tasks(loop)
                for task in pending:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()


_local = threading.local()


def run_in_thread_loop(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` on this thread's kept loop."""
    owned = getattr(_local, "owned", None)
    if owned is None:
        owned = _local.owned = _Owned()
    return owned.runner.run(coro, context=contextvars.copy_context())


def thread_loop() -> asyncio.AbstractEventLoop | None:
    """This thread's kept loop, if it ran anything yet (for tests)."""
    owned = getattr(_local, "owned", None)
    return owned.runner.get_loop() if owned is not None else None

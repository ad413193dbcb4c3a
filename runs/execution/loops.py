"""One event loop per executing thread, kept from run to run, with on-time timers.

``asyncio.run()`` makes a loop and closes it again for every run, which cost
~0.5 ms of each run's critical path on the target machine (selector and
self-pipe set up; every task cancelled, the loop closed). A worker thread runs
one run at a time, so it keeps one ``asyncio.Runner`` instead. Each run still
starts from a fresh copy of the thread's context, as under ``asyncio.run()``,
and the loop is closed when its thread ends.

On Linux the loop's selector is ``PreciseEpollSelector``: ``epoll_wait`` takes
whole milliseconds and Python rounds a timeout up, so a timer due in 4.1 ms
fired at 5 ms. That is 0.5 ms late on average at every level of a plan whose
steps end on timers (sleeps, retry backoffs, timeouts): 1-2% of the makespan of
the benchmark's 50 ms steps. The loop (``ExecutorEventLoop``) also runs callbacks
"when idle": the executor commits finished steps that start nothing then.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import select
import selectors
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


# select() takes no descriptor numbered FD_SETSIZE (1024 on Linux) or above.
_FD_SETSIZE = 1024


class PreciseEpollSelector(selectors.EpollSelector):
    """epoll with timeouts to the microsecond instead of rounded up to the next millisecond.

    A wait with a timeout first waits for the epoll descriptor itself with
    ``select()`` (a timeval: microseconds; the descriptor is readable as soon as
    any registered one is ready), then collects the events without waiting. A
    process whose epoll descriptor is numbered too high for ``select()`` waits
    the plain way.
    """

    def __init__(self) -> None:
        super().__init__()
        self._precise = self._selector.fileno() < _FD_SETSIZE

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0 and self._precise:
            select.select((self._selector.fileno(),), (), (), timeout)
            timeout = 0
        return super().select(timeout)


class _WhenIdle:
    """Selector mixin: callbacks that run when the loop is about to wait, nothing else being ready.

    asyncio asks its selector for events with a timeout of 0 while callbacks are
    ready to run, and with a longer one (or none) only when the loop would sleep:
    that is the moment this runs the idle callbacks (each should only schedule
    work, e.g. set a future's result), then looks for events without waiting.
    """

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[Callable[[], object]] = []

    def when_idle(self, callback: Callable[[], object]) -> None:
        self._idle.append(callback)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._idle and timeout != 0:
            callbacks, self._idle = self._idle, []
            for callback in callbacks:
                callback()
            timeout = 0
        return super().select(timeout)  # type: ignore[misc]


if hasattr(selectors, "EpollSelector"):

    class _ExecutorSelector(_WhenIdle, PreciseEpollSelector):
        pass

else:  # kqueue and the others take finer timeouts than epoll already

    class _ExecutorSelector(_WhenIdle, selectors.DefaultSelector):  # type: ignore[no-redef]
        pass


class ExecutorEventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop with on-time timers and ``call_when_idle``."""

    def __init__(self) -> None:
        self._executor_selector = _ExecutorSelector()
        super().__init__(self._executor_selector)

    def call_when_idle(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` (once) the next time the loop has nothing else to run."""
        self._executor_selector.when_idle(callback)


class _Owned:
    """This thread's runner; its loop is closed when the thread ends and drops its locals."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner(loop_factory=ExecutorEventLoop)

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

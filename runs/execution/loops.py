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
"when idle": the executor commits finished steps that start nothing then. And it
collects young garbage when it is about to wait (``collect_while_idle``): left to the
allocator, a collection (0.2-0.6 ms on the target machine) landed in the middle of
the burst of allocations that starts 98 steps at once, on the plan's critical path.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gc
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
        # CPython's EpollSelector keeps its epoll object in ``_selector`` (not in the stubs).
        self._precise = self._selector.fileno() < _FD_SETSIZE  # type: ignore[attr-defined]

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0 and self._precise:
            select.select((self._selector.fileno(),), (), (), timeout)  # type: ignore[attr-defined]
            timeout = 0
        return super().select(timeout)


# A young collection fits a wait this long (it takes 0.2-0.6 ms on the target machine,
# over a few thousand objects); a full one (all that was allocated since startup, the
# frozen startup heap aside) a wait of the second figure. Fewer young objects than the
# third are not worth a pass.
_IDLE_GC_WAIT = 0.002
_IDLE_FULL_GC_WAIT = 0.05
_IDLE_GC_MIN_OBJECTS = 500


def collect_while_idle(wait: float | None) -> bool:
    """Run the collection the allocator would run soon, if a wait of ``wait`` s has room for it.

    Chooses the generation as CPython does (the oldest whose count passed its
    threshold), but only collects generation 2 before a long wait. Returns whether
    it collected. Does nothing while the collector is disabled.
    """
    if wait is not None and wait < _IDLE_GC_WAIT:
        return False
    counts = gc.get_count()
    if counts[0] < _IDLE_GC_MIN_OBJECTS or not gc.isenabled():
        return False
    thresholds = gc.get_threshold()
    generation = 0
    if counts[1] >= thresholds[1]:
        generation = 1
        if counts[2] >= thresholds[2] and (wait is None or wait >= _IDLE_FULL_GC_WAIT):
            generation = 2
    gc.collect(generation)
    return True


class _WhenIdle:
    """Selector mixin: work for the moment the loop is about to wait, nothing else being ready.

    asyncio asks its selector for events with a timeout of 0 while callbacks are
    ready to run, and with a longer one (or none) only when the loop would sleep:
    that is the moment this runs the idle callbacks (each should only schedule
    work, e.g. set a future's result), then looks for events without waiting;
    and, when nothing is scheduled that soon, collects garbage.
    """

    def __init__(self) -> None:
        super().__init__()
        self._idle: list[Callable[[], object]] = []

    def when_idle(self, callback: Callable[[], object]) -> None:
        self._idle.append(callback)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout != 0:
            if self._idle:
                callbacks, self._idle = self._idle, []
                for callback in callbacks:
                    callback()
                timeout = 0
            elif collect_while_idle(timeout):
                timeout = 0  # the collection took part of the wait: look again, and loop
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

"""Step timeouts, with one timer per group of steps that start together.

``asyncio.timeout`` costs a context object, a timer and the timer's cancellation
per step: about a tenth of the executor's work per step when 98 steps start in
one commit. Steps started together with the same timeout share a deadline, so
they share one timer here. A retry attempt (or a rollback step) arms a group of
one.

Expiry cancels the step's task and remembers that it did, so ``expired`` can
tell the deadline's cancellation from any other. As in ``asyncio.timeout``,
``Task.uncancel`` tells whether a second cancel (the operator's) arrived too;
that one wins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class _Group:
    __slots__ = ("handle", "left", "tasks")

    def __init__(self, tasks: list[asyncio.Task[object]]) -> None:
        self.tasks = tasks
        self.left = len(tasks)
        self.handle: asyncio.TimerHandle | None = None


class Deadlines:
    """The armed deadlines of one executor's step tasks; use from its loop only."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._group_of: dict[asyncio.Task[object], _Group] = {}
        self._expired: set[asyncio.Task[object]] = set()

    def arm(self, tasks: Iterable[asyncio.Task[object]], seconds: float) -> None:
        """Cancel whichever of ``tasks`` is still in its armed attempt ``seconds`` from now."""
        group = _Group(list(tasks))
        if not group.tasks:
            return
        for task in group.tasks:
            self._group_of[task] = group
        group.handle = self._loop.call_later(seconds, self._expire, group)

    def is_armed(self, task: asyncio.Task[object]) -> bool:
        return task in self._group_of

    def disarm(self, task: asyncio.Task[object]) -> None:
        """The task's attempt ended (any way): its deadline no longer applies."""
        group = self._group_of.pop(task, None)
        if task in self._expired:  # expired, yet the attempt ended without seeing the cancel
            self._expired.discard(task)
            task.uncancel()
        if group is not None:
            group.left -= 1
            if not group.left and group.handle is not None:
                group.handle.cancel()

    def expired(self, task: asyncio.Task[object]) -> bool:
        """Whether the CancelledError ``task`` caught is its deadline's alone (then it is absorbed)."""
        if task not in self._expired:
            return False
        self._expired.discard(task)
        return task.uncancel() == 0

    def close(self) -> None:
        """Drop every timer still armed (the run stopped): those of tasks not yet disarmed."""
        for group in set(self._group_of.values()):
            if group.handle is not None:
                group.handle.cancel()
        self._group_of.clear()

    def _expire(self, group: _Group) -> None:
        for task in group.tasks:
            if self._group_of.get(task) is group and not task.done():
                self._expired.add(task)
                task.cancel()

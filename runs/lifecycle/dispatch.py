"""Hand runs to the workers: a Django Tasks task, enqueued once the caller commits.

The task row lives in the same database as the run (django-tasks-db), so every
worker of the deployment sees it. Workers of this process are woken at once;
on PostgreSQL a NOTIFY wakes workers in other processes too. Runs whose task
was lost (a crash between the commit and the enqueue) or whose worker died are
found again by ``runs.lifecycle.recovery``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction

if TYPE_CHECKING:
    from django_tasks.base import Task

log = logging.getLogger(__name__)

# PostgreSQL channel idle workers LISTEN on (runs.lifecycle.worker.PgWaker).
NOTIFY_CHANNEL = "plannerweb_tasks"

# The task bodies live in ``runs.tasks`` (an entry point, like a view) and call into
# this package; they are handed over at app loading (``RunsConfig.ready``) so that
# dispatch does not import its own callers.
_tasks: dict[str, Task[Any, Any]] = {}


def use_tasks(*, execute: Task[Any, Any], resume: Task[Any, Any]) -> None:
    """Name the Django Tasks that execute and resume runs (called once at app loading)."""
    _tasks.update(execute=execute, resume=resume)


def run_task_paths() -> list[str]:
    """The dotted paths of the run tasks, as task rows store them."""
    return [task.module_path for task in _tasks.values()]


def enqueue_run(run_id: int) -> None:
    """Queue the run's execution after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _enqueue(run_id))


def enqueue_resume(run_id: int) -> None:
    """Queue a run's resumption after a human decision, once the decision commits."""
    transaction.on_commit(lambda: _enqueue_resume(run_id))


def _enqueue_resume(run_id: int) -> None:
    _tasks["resume"].enqueue(run_id)
    wake_workers()


def _enqueue(run_id: int) -> None:
    _tasks["execute"].enqueue(run_id)
    wake_workers()


def wake_workers() -> None:
    """Tell idle workers a task is ready: threads here directly, other processes by NOTIFY."""

    local_wake()
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        except Exception:  # the task is stored; a worker's poll finds it anyway
            log.warning("NOTIFY %s failed; workers will find the task by polling", NOTIFY_CHANNEL)


_local_events: set[threading.Event] = set()


_local_lock = threading.Lock()


def local_wake() -> None:
    """Wake every idle worker thread of this process (an enqueue just committed)."""
    with _local_lock:
        for event in _local_events:
            event.set()


class LocalWaker:
    """Waits for ``local_wake`` or the timeout."""

    def __init__(self) -> None:
        self._event = threading.Event()
        with _local_lock:
            _local_events.add(self._event)

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)
        self._event.clear()

    def interrupt(self) -> None:
        self._event.set()

    def close(self) -> None:
        with _local_lock:
            _local_events.discard(self._event)

"""Hand runs to the workers: a Django Tasks task, enqueued once the caller commits.

The task row lives in the same database as the run (django-tasks-db), so every
worker of the deployment sees it. Workers of this process are woken at once;
on PostgreSQL a NOTIFY wakes workers in other processes too. Runs whose task
was lost (a crash between the commit and the enqueue) or whose worker died are
found again by ``runs.recovery``.
"""

from __future__ import annotations

import logging

from django.db import connection, transaction

from runs.tasks import execute_run, resume_run

log = logging.getLogger(__name__)

# PostgreSQL channel idle workers LISTEN on (runs.worker.PgWaker).
NOTIFY_CHANNEL = "plannerweb_tasks"


def enqueue_run(run_id: int) -> None:
    """Queue the run's execution after the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: _enqueue(run_id))


def enqueue_resume(run_id: int) -> None:
    """Queue a run's resumption after a human decision, once the decision commits."""
    transaction.on_commit(lambda: _enqueue_resume(run_id))


def _enqueue_resume(run_id: int) -> None:
    resume_run.enqueue(run_id)
    wake_workers()


def _enqueue(run_id: int) -> None:
    execute_run.enqueue(run_id)
    wake_workers()


def wake_workers() -> None:
    """Tell idle workers a task is ready: threads here directly, other processes by NOTIFY."""
    from runs.worker import local_wake

    local_wake()
    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")
        except Exception:  # the task is stored; a worker's poll finds it anyway
            log.warning("NOTIFY %s failed; workers will find the task by polling", NOTIFY_CHANNEL)

"""Hand runs to whatever executes them in this deployment.

Embedded default: the worker threads inside this process (``runs.worker``).
With ``PLANNERWEB_WORKER=none`` nothing here executes runs; a separate
``manage.py run_worker`` process (or, later, Django Tasks workers) finds queued
runs in the database. Either way the run is only handed over after commit.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction


def enqueue_run(run_id: int) -> None:
    if settings.PLANNERWEB_WORKER != "inprocess":
        return

    def hand_over() -> None:
        from runs.worker import embedded_worker

        worker = embedded_worker()
        if worker is not None:
            worker.wake(run_id)

    transaction.on_commit(hand_over)

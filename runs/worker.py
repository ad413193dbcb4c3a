"""A run worker: threads that claim runs from the database and execute them.

It serves two deployments: inside the Daphne process (embedded default, started
by ``plannerweb.asgi``) and as its own process (``manage.py run_worker``). It
polls for claimable runs (queued, or active with an expired lease, e.g. after a
crash) so that runs submitted by any process get picked up; in-process
submissions skip the wait via ``wake``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Q
from django.utils import timezone

from runs.models import Run, RunStatus
from runs.statemachine import RUN_ACTIVE

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, *, threads: int, poll_seconds: float, worker_id: str) -> None:
        self.worker_id = worker_id
        self.poll_seconds = poll_seconds
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="plannerweb-run")
        self._threads = threads
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._poller: threading.Thread | None = None

    def start(self) -> None:
        self._poller = threading.Thread(
            target=self._poll_loop, name="plannerweb-poller", daemon=True
        )
        self._poller.start()

    def stop(self, *, wait: bool = True) -> None:
        self._stop.set()
        self._poke.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def wake(self, run_id: int) -> None:
        self._submit(run_id)

    def _submit(self, run_id: int) -> bool:
        with self._lock:
            if run_id in self._in_flight or len(self._in_flight) >= self._threads:
                return False
            self._in_flight.add(run_id)
        self._pool.submit(self._execute, run_id)
        return True

    def _execute(self, run_id: int) -> None:
        from runs.services import run_execute

        try:
            run_execute(run_id=run_id, worker_id=self.worker_id)
        except Exception:
            log.exception("run %s failed in the worker", run_id)
        finally:
            close_old_connections()
            with self._lock:
                self._in_flight.discard(run_id)
            self._poke.set()

    def claimable(self) -> list[int]:
        now = timezone.now()
        return list(
            Run.objects.filter(
                Q(status=RunStatus.QUEUED)
                | Q(status__in=RUN_ACTIVE, lease_expires_at__lt=now)
                | Q(status__in=RUN_ACTIVE, lease_expires_at__isnull=True)
            )
            .order_by("created_at")
            .values_list("pk", flat=True)[: self._threads * 2]
        )

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                for run_id in self.claimable():
                    self._submit(run_id)
            except Exception:
                log.exception("worker poll failed")
            finally:
                close_old_connections()
            self._poke.wait(self.poll_seconds)
            self._poke.clear()


_embedded: Worker | None = None
_embedded_lock = threading.Lock()


def embedded_worker() -> Worker | None:
    return _embedded


def start_embedded_worker(**overrides: Any) -> Worker | None:
    """Start the in-process worker once (idempotent); None when this process runs no worker."""
    global _embedded
    if settings.PLANNERWEB_WORKER != "inprocess":
        return None
    from runs.services import worker_identity

    with _embedded_lock:
        if _embedded is None:
            _embedded = Worker(
                threads=overrides.get("threads", settings.PLANNERWEB_WORKER_THREADS),
                poll_seconds=overrides.get("poll_seconds", settings.PLANNERWEB_WORKER_POLL_SECONDS),
                worker_id=worker_identity(),
            )
            _embedded.start()
        return _embedded

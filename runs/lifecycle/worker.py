"""Workers: django-tasks-db's worker, woken at once, sweeping for orphaned runs.

One class serves both deployments: ``manage.py db_worker`` processes (one
worker each; scale-out) and threads inside the serving process (embedded
default, started by ``plannerweb.asgi``). Compared with the stock worker it
adds two things:

1. Idle workers wait on a wake-up instead of sleeping a fixed interval: a
   threading event for enqueues made in this process, PostgreSQL
   ``LISTEN``/``NOTIFY`` for enqueues made anywhere. The poll interval stays as
   a backstop for a lost notification.
2. Every ``PLANNERWEB_RECOVERY_SECONDS`` it runs ``runs.lifecycle.recovery.runs_recover``,
   which re-queues runs whose worker died or whose task was lost, records the
   review items that opened, near their SLA or are overdue for notification
   (``reviews.notifications.notices_sweep``), and applies the timeout action of
   overdue review items (``review_expire_overdue``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, OperationalError, close_old_connections, connections
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from reviews.notifications import QUEUE as NOTIFICATIONS_QUEUE
from reviews.notifications import notices_sweep
from runs.lifecycle.dispatch import NOTIFY_CHANNEL, LocalWaker, run_task_paths
from runs.lifecycle.host import RunHost, host_settings
from runs.lifecycle.leases import worker_identity
from runs.lifecycle.pool_worker import PoolServer
from runs.lifecycle.recovery import runs_recover
from runs.lifecycle.retention import retention_purge
from runs.lifecycle.reviews import review_expire_overdue

log = logging.getLogger(__name__)
# (run, rule) purges per worker sweep: the rest waits for the next sweep, so a backlog
# never keeps a worker from its runs for long.
PURGE_SWEEP_LIMIT = 50


# Young objects allocated before the collector runs by itself (CPython's default: 700).
YOUNG_GC_THRESHOLD = 5000


def tune_gc_for_service() -> None:
    """Set the garbage collector up for a long-running process; call it once, after setup.

    1. What the process loaded at startup leaves the collector's view: Django, the
       apps and the server live as long as the process; without this every gen-2
       collection scans them all, wherever it lands: 80-100 ms pauses on Daphne's
       serving loop (bench/events.py, 200 clients), and 65 ms inside a run of 1,000
       steps (bench/engine.py: 100 µs a step instead of 33).
    2. Young collections wait for more objects (``YOUNG_GC_THRESHOLD``), so that
       executor loops run them while idle (``loops.collect_while_idle``) rather than
       the allocator in the middle of a burst: starting 98 steps at once allocates
       over 700 objects, and that collection delayed the last of them.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


class PgWaker:
    """Waits for a NOTIFY on ``runs.lifecycle.dispatch.NOTIFY_CHANNEL`` (sent by any process) or the timeout.

    Uses a connection of its own in autocommit mode, so notifications arrive
    while the worker's main connection is idle or busy.
    """

    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:

        self._wrapper = connections.create_connection(alias)
        self._wrapper.ensure_connection()
        self._raw = self._wrapper.connection
        self._raw.autocommit = True
        self._raw.execute(f"LISTEN {NOTIFY_CHANNEL}")

    def wait(self, timeout: float) -> None:
        # Drain everything queued: one wake-up per wait is enough.
        for _ in self._raw.notifies(timeout=timeout, stop_after=1):
            pass
        for _ in self._raw.notifies(timeout=0):
            pass

    def interrupt(self) -> None:
        """Wake the waiting thread (from another thread): closing its socket would not."""
        from django.db import connection

        with contextlib.suppress(Exception), connection.cursor() as cursor:
            cursor.execute(f"NOTIFY {NOTIFY_CHANNEL}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._wrapper.close()


def make_waker() -> LocalWaker | PgWaker:
    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql" and settings.PLANNERWEB_WORKER_LISTEN:
        return PgWaker()
    return LocalWaker()


class RunWorker(Worker):
    """django-tasks-db's ``Worker`` with wake-ups and orphan recovery (see the module docstring)."""

    def __init__(
        self,
        *,
        recovery_seconds: float | None = None,
        concurrency: int | None = None,
        pool_queues: list[str] | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("queue_names", ["default"])
        options.setdefault("batch", False)
        options.setdefault("backend_name", "default")
        options.setdefault("startup_delay", False)
        options.setdefault("max_tasks", None)
        options.setdefault("excluded_queue_names", [])
        options.setdefault("interval", settings.PLANNERWEB_WORKER_POLL_SECONDS)
        super().__init__(**options)
        self.recovery_seconds = (
            settings.PLANNERWEB_RECOVERY_SECONDS if recovery_seconds is None else recovery_seconds
        )
        self._next_recovery = 0.0
        self._next_purge = time.monotonic() + settings.PLANNERWEB_PURGE_INTERVAL_SECONDS
        self.waker: LocalWaker | PgWaker | None = None
        # Runs executed many at once on a host (runs/lifecycle/host.py), unless 1.
        self.concurrency = (
            settings.PLANNERWEB_WORKER_CONCURRENCY if concurrency is None else concurrency
        )
        self.host: RunHost | None = None
        # Tool queues (executor pools) this worker also serves, in threads of their own.
        self.pool_queues = list(pool_queues or [])
        self.pool: PoolServer | None = None

    def stop(self) -> None:
        """Finish the tasks in hand, then return from ``run`` (thread-safe)."""
        self.running = False
        if self.waker is not None:
            self.waker.interrupt()

    def shutdown(self, signum: int, frame: Any) -> None:
        """First signal: stop claiming and let the runs held finish; a second one exits at once."""
        if self.running and self.host is not None and self.host.held:
            log.warning(
                "worker %s: shutting down once its %d run(s) stop (signal again to exit now)",
                self.worker_id,
                self.host.held,
            )
            self.stop()
            return
        super().shutdown(signum, frame)

    def run(self) -> None:
        log.info("worker %s starting (queues %s)", self.worker_id, ",".join(self.queue_names))
        self.waker = make_waker()
        if self.pool_queues:
            self.pool = PoolServer(worker_id=self.worker_id, queues=self.pool_queues)
            self.pool.start()
        if self.concurrency > 1 and "default" in self.queue_names:
            self.host = RunHost(
                # Leases name the process, as a run executed in a worker thread does.
                worker_id=worker_identity(),
                **{**host_settings(), "concurrency": self.concurrency},
            )
        try:
            while self.running:
                self.recover_due()
                if self.host is not None and not self.host.has_room():
                    self.host.wait_for_room(self.interval)
                    continue
                task_result = self.claim_next()
                if task_result is not None:
                    self.hand_over(task_result)
                    if self.max_tasks is not None and self._run_tasks >= self.max_tasks:
                        return
                    continue
                if self.batch:
                    if self.host is None or not self.host.held:
                        return
                    # Runs still held may queue more work (a resume): look again once they stop.
                    self.host.wait_idle(self.interval)
                    continue
                close_old_connections()
                self.waker.wait(self.interval)
        finally:
            if self.host is not None:
                self.host.wait_idle()
                self.host.close()
            if self.pool is not None:
                self.pool.stop()
            self.waker.close()
            connections.close_all()

    def hand_over(self, task_result: DBTaskResult) -> None:
        """Execute a claimed task: a run on the host (returns at once), anything else here."""
        host = self.host
        if host is None or task_result.task_path not in run_task_paths():
            self.run_task(task_result)
            return
        (run_id,) = task_result.task_result.args

        def done(outcome: str | BaseException) -> None:
            if isinstance(outcome, BaseException):
                task_result.set_failed(outcome)
            else:
                task_result.set_successful(outcome)

        self._run_tasks += 1
        host.start(int(run_id), done)

    def claim_next(self) -> DBTaskResult | None:
        """Lock the next ready task with SKIP LOCKED and mark it ours (as the stock worker does)."""
        close_old_connections()
        tasks = DBTaskResult.objects.ready().filter(backend_name=self.backend_name)
        if not self.process_all_queues:
            tasks = tasks.filter(queue_name__in=self.queue_names)
        if self.excluded_queue_names:
            tasks = tasks.exclude(queue_name__in=self.excluded_queue_names)
        try:
            with exclusive_transaction(tasks.db):
                task_result = tasks.get_locked()
                if task_result is not None:
                    task_result.claim(self.worker_id)
                return task_result
        except OperationalError as exc:
            if is_locked_database_exception(exc):
                return None
            raise

    def purge_due(self) -> None:
        """Apply the retention rules every ``PLANNERWEB_PURGE_INTERVAL_SECONDS`` (a bounded sweep)."""
        interval = settings.PLANNERWEB_PURGE_INTERVAL_SECONDS
        if interval <= 0 or time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + interval
        try:
            report = retention_purge(limit=PURGE_SWEEP_LIMIT)
        except Exception:
            log.exception("retention sweep failed")
            return
        if report.items:
            log.info("retention purged %d item(s)", len(report.items))

    def recover_due(self) -> None:
        self.purge_due()
        if self.recovery_seconds <= 0 or time.monotonic() < self._next_recovery:
            return
        self._next_recovery = time.monotonic() + self.recovery_seconds

        try:
            # Before the expiry: an item that times out now is still told as overdue.
            notices_sweep()
        except Exception:
            log.exception("notification sweep failed")
        try:
            requeued = runs_recover()
            expired = review_expire_overdue()
        except Exception:
            log.exception("recovery sweep failed")
            return
        if requeued:
            log.warning("requeued orphaned runs %s", requeued)
        if expired:
            log.info("applied the timeout action of overdue review items %s", expired)


class EmbeddedWorkers:
    """Worker threads inside the serving process (the embedded default)."""

    def __init__(self, *, threads: int, notify_threads: int = 1, concurrency: int = 1) -> None:
        # One thread hosting many runs (concurrency > 1), or threads running one run each.
        self.workers = [
            RunWorker(worker_id=f"{worker_identity()}:t{i}"[-64:], concurrency=concurrency)
            for i in range(1 if concurrency > 1 else threads)
        ]
        # Deliveries have threads of their own: a slow receiver never holds a run.
        self.workers += [
            RunWorker(
                worker_id=f"{worker_identity()}:n{i}"[-64:], queue_names=[NOTIFICATIONS_QUEUE]
            )
            for i in range(notify_threads)
        ]
        self.threads = [
            threading.Thread(target=w.run, name=f"plannerweb-worker-{i}", daemon=True)
            for i, w in enumerate(self.workers)
        ]
        # Executor pools: the serving process calls the tools of every queue it is told to
        # (``PLANNERWEB_EMBEDDED_POOL_QUEUES``, all by default), so a laptop needs no db_worker.
        queues = list(settings.PLANNERWEB_EMBEDDED_POOL_QUEUES)
        self.pool = (
            PoolServer(worker_id=f"{worker_identity()}:p", queues=queues) if queues else None
        )

    def start(self) -> None:
        for thread in self.threads:
            thread.start()
        if self.pool is not None:
            self.pool.start()

    def stop(self, *, timeout: float | None = None) -> None:
        for worker in self.workers:
            worker.stop()
        for thread in self.threads:
            thread.join(timeout)
        if self.pool is not None:
            self.pool.stop(timeout)


_embedded: EmbeddedWorkers | None = None
_embedded_lock = threading.Lock()


def start_embedded_worker(**overrides: Any) -> EmbeddedWorkers | None:
    """Start the in-process workers once (idempotent); None when this process runs none."""
    global _embedded
    if settings.PLANNERWEB_WORKER != "inprocess":
        return None
    with _embedded_lock:
        if _embedded is None:
            _embedded = EmbeddedWorkers(
                threads=overrides.get("threads", settings.PLANNERWEB_WORKER_THREADS),
                notify_threads=overrides.get(
                    "notify_threads", settings.PLANNERWEB_NOTIFY_WORKER_THREADS
                ),
                concurrency=overrides.get("concurrency", settings.PLANNERWEB_WORKER_CONCURRENCY),
            )
            _embedded.start()
        return _embedded

"""Many runs executed at once by one worker: a shared event loop, a few writer threads.

An agent's steps mostly wait (on a model, a deploy, a lock), so a worker that
executed one run at a time spent its life waiting. A ``RunHost`` keeps one
event loop thread per worker on which every run it holds executes as a task:

1. **Start.** The claiming thread hands each run task to ``start``; a *prepare*
   thread plans the run if it needs it, claims its lease and loads it
   (``runs.lifecycle.claim.run_start``: ORM work, kept off the loop), then the
   executor's coroutine is scheduled on the loop. At most ``concurrency`` runs
   are held; the claiming thread waits for room (``wait_for_room``).
2. **Writes.** Journals of hosted runs own no connection: their commits go to
   ``writers`` threads, each with one connection of its own
   (``runs.execution.journal_link.link_for_thread``), so the process holds a
   bounded number of connections whatever the number of runs, and a slow commit
   of one run never stalls another's steps. A run alone on the loop commits
   inline instead (nobody to stall, no hop).
3. **Fair share.** Each run starts at most ``max_steps // runs held`` steps at
   once (and never more than its own ``max_parallel``), so one run's fan-out of a
   thousand steps cannot take every slot of the worker.
4. **Finish.** When a run stops (ends, or parks for a human), its task row is
   marked done from a prepare thread and the slot is free again.

Crash semantics are those of single runs: each run has its own lease, heartbeat,
fence and journal; a worker killed with runs in flight leaves their leases to
lapse, and recovery queues them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from runs.execution.engine import RunExecutor
from runs.execution.journal import Journal, heartbeat_runs
from runs.execution.journal_link import Link, close_thread_links, link_for_thread
from runs.execution.loops import ExecutorEventLoop
from runs.lifecycle.claim import run_start
from runs.lifecycle.subplan_links import subplan_after_stop
from runs.lifecycle.traces import traced_run_async

log = logging.getLogger(__name__)


class RunHost:
    """Executes up to ``concurrency`` runs at once on one event loop; see the module docstring."""

    def __init__(
        self,
        *,
        worker_id: str,
        concurrency: int,
        writers: int,
        prepare_threads: int,
        tool_threads: int,
        max_steps: int,
    ) -> None:
        self.worker_id = worker_id
        self.concurrency = max(1, concurrency)
        self.max_steps = max(1, max_steps)
        self._room = threading.Condition()
        self._held = 0  # runs started and not yet finished (preparing or executing)
        self._preparing = 0  # runs being planned, claimed and loaded
        self._prepare_threads = max(1, prepare_threads)
        self.executing: dict[int, RunExecutor] = {}  # touched on the loop thread only
        # Each writer thread opens its link when it starts; ``close`` closes them all.
        self._links: list[Link] = []
        self._writers = ThreadPoolExecutor(
            max(1, writers), thread_name_prefix="plannerweb-writer", initializer=self._open_link
        )
        self._prepare = ThreadPoolExecutor(
            max(1, prepare_threads), thread_name_prefix="plannerweb-prepare"
        )
        self._loop_link = True  # the loop thread's own connection opened (``_serve``)
        self.loop = ExecutorEventLoop()
        # Sync python tools and the executors' ORM helpers (``in_db_thread``) run here.
        self.loop.set_default_executor(
            ThreadPoolExecutor(max(1, tool_threads), thread_name_prefix="plannerweb-tools")
        )
        self._thread = threading.Thread(
            target=self._serve, name="plannerweb-runs-loop", daemon=True
        )
        self._thread.start()

    # -- the claiming thread's side ------------------------------------------------------
    @property
    def held(self) -> int:
        """Runs held now (preparing or executing)."""
        return self._held

    def has_room(self) -> bool:
        """Whether another run may be taken now.

        Only while a prepare thread is free, too: a task taken waits for no thread, so
        its run is claimed at once (recovery would take a queued run whose task waited
        for an orphan, and queue it again).
        """
        return self._held < self.concurrency and self._preparing < self._prepare_threads

    def wait_for_room(self, timeout: float) -> bool:
        """Wait until a run may be taken (or ``timeout`` s); returns whether there is room."""
        with self._room:
            return self._room.wait_for(self.has_room, timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no run is held (a worker draining before it exits)."""
        with self._room:
            return self._room.wait_for(lambda: self._held == 0, timeout)

    def start(self, run_id: int, done: Callable[[str | BaseException], None]) -> None:
        """Take a run: prepare it in a prepare thread, execute it on the loop, then call ``done``.

        ``done`` (called in a prepare thread) gets the run's status where it stopped,
        or the exception that stopped its executor.
        """
        with self._room:
            self._held += 1
            self._preparing += 1
        self._prepare.submit(self._prepare_run, run_id, done)

    def close(self) -> None:
        """Stop the loop and the threads (after ``wait_idle``; runs still held are abandoned)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self._writers.shutdown(wait=True, cancel_futures=True)
        self._prepare.shutdown(wait=True, cancel_futures=True)
        for link in self._links:
            with contextlib.suppress(Exception):
                link.close()

    def _open_link(self) -> None:
        self._links.append(link_for_thread())

    # -- prepare threads -----------------------------------------------------------------
    def _prepare_run(self, run_id: int, done: Callable[[str | BaseException], None]) -> None:
        try:
            started = run_start(run_id=run_id, worker_id=self.worker_id)
        except BaseException as exc:
            self._prepared()
            self._release(run_id, done, exc)
            return
        finally:
            connections.close_all()  # back to the pool (PostgreSQL) while the run executes
        self._prepared()
        if isinstance(started, str):
            self._release(run_id, done, started)
            return
        future = asyncio.run_coroutine_threadsafe(self._execute(started), self.loop)
        future.add_done_callback(lambda f: self._prepare.submit(self._finished, run_id, f, done))

    def _prepared(self) -> None:
        with self._room:
            self._preparing -= 1
            self._room.notify_all()

    def _finished(
        self, run_id: int, future: Future[str], done: Callable[[str | BaseException], None]
    ) -> None:
        try:
            outcome: str | BaseException = future.result()
        except BaseException as exc:
            log.exception("run %s: its executor stopped on an error", run_id)
            outcome = exc
        self._release(run_id, done, outcome)

    def _release(
        self, run_id: int, done: Callable[[str | BaseException], None], outcome: str | BaseException
    ) -> None:
        try:
            subplan_after_stop(run_id=run_id)  # a child run that stopped: its parent goes on
            done(outcome)
        except Exception:
            log.exception("run %s: recording its task's end failed", run_id)
        finally:
            connections.close_all()
            with self._room:
                self._held -= 1
                self._room.notify_all()

    # -- the loop thread -----------------------------------------------------------------
    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        # The link of a run alone on the loop, which commits inline: opened before the
        # loop runs (Django refuses to connect from inside a running loop).
        try:
            link_for_thread()
        except Exception:  # then every commit goes to the writer threads
            log.exception("worker %s: no connection for inline commits", self.worker_id)
            self._loop_link = False
        self.loop.create_task(self._heartbeats())
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                pending = asyncio.all_tasks(self.loop)
                for task in pending:
                    task.cancel()
                self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            close_thread_links()
            connections.close_all()
            self.loop.close()

    async def _heartbeats(self) -> None:
        """Renew the leases of every run held, in one statement a period, and pass each its row.

        Renewed one by one, a hundred runs beat a hundred transactions a period through
        the writer threads, and on a busy machine some leases lapsed before their turn.
        """
        seconds = float(settings.PLANNERWEB_HEARTBEAT_SECONDS)
        while True:
            await asyncio.sleep(seconds)
            executors = dict(self.executing)
            if not executors:
                continue
            fences = {run_id: ex.run.fence for run_id, ex in executors.items()}
            until = timezone.now() + timedelta(seconds=seconds * 5)
            try:
                if self._loop_link:  # one short statement: inline, never queued behind commits
                    rows = _renew(fences, until)
                else:
                    rows = await self.loop.run_in_executor(self._writers, _renew, fences, until)
            except Exception:
                log.exception("worker %s: renewing %d leases failed", self.worker_id, len(fences))
                continue
            for run_id, row in rows.items():
                if self.executing.get(run_id) is executors[run_id]:
                    executors[run_id].heard(row)

    async def _execute(self, executor: RunExecutor) -> str:
        run_id = executor.run_id
        executor.run.share = self._share
        journal = Journal(fence=executor.run.fence, offload=self._writers, offload_if=self._crowded)
        self.executing[run_id] = executor
        try:
            return await traced_run_async(
                run_id, phase="execute", work=lambda: executor.execute_hosted(journal)
            )
        finally:
            self.executing.pop(run_id, None)

    def _crowded(self) -> bool:
        """Whether commits go to the writer threads: another run shares the loop."""
        return len(self.executing) > 1 or not self._loop_link

    def _share(self) -> int:
        """How many steps one run may have running at once: its fair share of the worker's."""
        return max(1, self.max_steps // max(1, len(self.executing)))


def _renew(fences: dict[int, str | None], until: datetime) -> dict[int, tuple[Any, ...]]:
    return heartbeat_runs(link_for_thread(), fences, until)


def host_settings() -> dict[str, Any]:
    """The host's sizes from settings (``PLANNERWEB_WORKER_*``, docs/operations.md)."""
    vendor = connections["default"].vendor
    return {
        "concurrency": settings.PLANNERWEB_WORKER_CONCURRENCY,
        # SQLite takes one writer at a time: more writer threads would only queue.
        "writers": 1 if vendor == "sqlite" else settings.PLANNERWEB_WORKER_WRITERS,
        "prepare_threads": settings.PLANNERWEB_WORKER_PREPARE_THREADS,
        "tool_threads": settings.PLANNERWEB_WORKER_TOOL_THREADS,
        "max_steps": settings.PLANNERWEB_WORKER_MAX_STEPS,
    }


def connection_budget(sizes: dict[str, Any] | None = None) -> int:
    """The most database connections one hosting worker process opens, whatever it holds.

    Writer threads, prepare threads and tool threads (whose ORM helpers close theirs
    after each use) hold one each at most; then the loop thread's own, the claiming
    thread's and, on PostgreSQL, the LISTEN connection.
    """
    sizes = sizes or host_settings()
    return sizes["writers"] + sizes["prepare_threads"] + sizes["tool_threads"] + 3

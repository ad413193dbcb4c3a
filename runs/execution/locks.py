"""Resource locks in the database: a step takes its keys before it starts, one key at a time.

Rules (see docs/runs.md, "Resource locks"):
1. A step's keys are its lock templates rendered over its params, sorted; it
   takes them in that order and keeps each until it finishes. Every step takes
   keys in the same order, so no two steps wait on each other in a circle.
2. Taking a key: a waiting row joins the key's queue (``ResourceLock``, in id
   order); the row is granted once no earlier row of the key waits and none is
   held. A unique index on held rows makes the database the judge, so
   executors in other processes or machines never both hold a key.
3. A waiting step polls every ``PLANNERWEB_LOCK_POLL_SECONDS`` and says in the
   transcript whom it waits for (again when that changes).
4. Rows go with the batch that finishes their step (``Batch.unlock``), with the
   run's end (``Journal``), when a wait is cancelled, when an executor takes a
   run over, and when recovery queues an orphaned run again; a waiting step also
   drops the rows of runs ahead of it whose lease lapsed (``_clear_lapsed``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.utils import timezone

from runs.events import StepLockAcquired, StepLockWaiting
from runs.execution.journal import Batch, Journal, StaleStateError
from runs.execution.steps import EXECUTOR, StepState
from runs.execution.writes import Committer
from runs.models import ResourceLock, Run, Step

_LOCK = ResourceLock._meta.db_table
_RUN = Run._meta.db_table
_STEP = Step._meta.db_table
_NOBODY: Any = object()  # no holder shown yet
log = logging.getLogger(__name__)


class LockQueue:
    """One executor's access to the lock rows, through its journal's connection."""

    def __init__(
        self, journal: Journal, committer: Committer, run_id: int, *, poll_seconds: float
    ) -> None:
        self.journal = journal
        self.committer = committer
        self.run_id = run_id
        self.poll_seconds = poll_seconds
        sql = journal.sql
        fence = journal.fence
        owner = " AND lease_owner = %s" if fence is not None else ""
        self._fence_args: tuple[Any, ...] = (fence,) if fence is not None else ()
        self._find = sql(f"SELECT id FROM {_LOCK} WHERE step_id = %s AND key = %s")
        # The row joins the queue only while the run is still ours (the lease's fence).
        self._enqueue = sql(
            f"INSERT INTO {_LOCK} (key, run_id, step_id, granted, created_at) "
            f"SELECT %s, id, %s, FALSE, %s FROM {_RUN} WHERE id = %s{owner}"
        )
        self._grant = sql(
            f"UPDATE {_LOCK} SET granted = TRUE, granted_at = %s WHERE id = %s "
            f"AND NOT EXISTS (SELECT 1 FROM {_LOCK} o WHERE o.key = %s AND o.id <> %s "
            "AND (o.granted OR o.id < %s)) "
            f"AND EXISTS (SELECT 1 FROM {_RUN} WHERE id = %s{owner})"
        )
        # Runs ahead in the key's line whose lease lapsed: their worker died (or stalled).
        self._lapsed = sql(
            f"SELECT DISTINCT l.run_id FROM {_LOCK} l JOIN {_RUN} r ON r.id = l.run_id "
            "WHERE l.key = %s AND l.run_id <> %s AND (l.granted OR l.id < %s) "
            "AND (r.lease_expires_at IS NULL OR r.lease_expires_at < %s)"
        )
        self._fence_out = sql(
            f"UPDATE {_RUN} SET lease_owner = '' WHERE id = %s "
            "AND (lease_expires_at IS NULL OR lease_expires_at < %s)"
        )
        self._drop_run = sql(f"DELETE FROM {_LOCK} WHERE run_id = %s")
        self._holder = sql(
            f"SELECT l.run_id, s.key FROM {_LOCK} l JOIN {_STEP} s ON s.id = l.step_id "
            "WHERE l.key = %s AND l.granted"
        )

    async def acquire(self, state: StepState, keys: tuple[str, ...]) -> None:
        """Take ``keys`` (sorted) for ``state``, waiting in line for each; cancel-safe."""
        try:
            for key in keys:
                row = await self.journal.call(self._join, state.id, key)
                shown = _NOBODY
                while True:
                    granted, holder = await self.journal.call(self._try, row, key)
                    if granted:
                        break
                    if holder != shown:
                        shown = holder
                        await self._say_waiting(state, key, holder)
                    await asyncio.sleep(self.poll_seconds)
        except BaseException:
            # Cancelled (the run stops or failed) or lost: leave no row in anybody's way.
            self.release_steps([state.id])
            raise

    def acquired(self, batch: Batch, state: StepState, keys: tuple[str, ...]) -> None:
        """Record in ``batch`` (the one that starts ``state``) that it holds ``keys``."""
        batch.events.append(
            (EXECUTOR, StepLockAcquired(step_id=state.id, step=state.key, locks=list(keys)))
        )

    def release_steps(self, step_ids: list[int]) -> None:
        """Drop the rows of steps that will not start (held or waiting)."""
        if not step_ids:
            return
        marks = ", ".join(["%s"] * len(step_ids))
        with self.journal.transaction() as cursor:
            cursor.execute(
                self.journal.sql(f"DELETE FROM {_LOCK} WHERE step_id IN ({marks})"), step_ids
            )

    def release_run(self) -> None:
        """Drop every row of the run: what an executor that stopped before left behind."""
        with self.journal.transaction() as cursor:
            cursor.execute(
                self.journal.sql(f"DELETE FROM {_LOCK} WHERE run_id = %s"), (self.run_id,)
            )

    def _join(self, step_id: int, key: str) -> int:
        """The step's row in the key's queue (a new waiting one unless it has one)."""
        with self.journal.transaction() as cursor:
            cursor.execute(self._find, (step_id, key))
            found = cursor.fetchone()
            if found is not None:
                return int(found[0])
            now = self._now()
            cursor.execute(self._enqueue, (key, step_id, now, self.run_id, *self._fence_args))
            if cursor.rowcount != 1:
                raise StaleStateError(f"run {self.run_id} is no longer ours to lock for")
            cursor.execute(self._find, (step_id, key))
            return int(cursor.fetchone()[0])

    def _try(self, row: int, key: str) -> tuple[bool, tuple[int, str] | None]:
        """Try to be granted ``row``: (granted, else who holds ``key`` now, if anybody)."""
        try:
            with self.journal.transaction() as cursor:
                args = (self._now(), row, key, row, row, self.run_id, *self._fence_args)
                cursor.execute(self._grant, args)
                if cursor.rowcount == 1:
                    return True, None
                self._clear_lapsed(cursor, row, key, args[0])
                cursor.execute(self._holder, (key,))
                holder = cursor.fetchone()
        except self.journal.integrity_error:
            # Another executor was granted the key in the same instant: wait in line.
            return False, None
        return False, (int(holder[0]), str(holder[1])) if holder is not None else None

    def _clear_lapsed(self, cursor: Any, row: int, key: str, now: Any) -> None:
        """Drop the rows of runs ahead in line whose worker stopped renewing its lease.

        Recovery would do it too, but only a worker with nothing to run sweeps, and
        every worker may be busy with runs waiting here. The run is fenced first (its
        lease no longer names its worker), as recovery does, so a worker that was only
        stalled stops at its next heartbeat and writes nothing more; recovery still
        queues the run again, and its next executor takes its locks anew.
        """
        cursor.execute(self._lapsed, (key, self.run_id, row, now))
        for (run_id,) in cursor.fetchall():
            cursor.execute(self._fence_out, (run_id, now))
            if cursor.rowcount == 1:
                log.warning("lock %s: run %s lost its worker; its locks are released", key, run_id)
                cursor.execute(self._drop_run, (run_id,))

    async def _say_waiting(
        self, state: StepState, key: str, holder: tuple[int, str] | None
    ) -> None:
        batch = Batch(self.run_id)
        run, step = holder if holder is not None else (None, "")
        event = StepLockWaiting(
            step_id=state.id, step=state.key, lock=key, held_by_run=run, held_by_step=step
        )
        batch.events.append((EXECUTOR, event))
        await self.committer.commit(batch)

    def _now(self) -> Any:
        return self.journal.adapt_time(timezone.now())

"""The executor's write path: checked state changes and their transcript events, group-committed.

Why a writer thread: Django's ORM is synchronous and the executor is an asyncio
program. Instead of hopping to a thread for every write, executors hand
*batches* (state changes + the events that record them) to one writer thread.
It drains everything queued, applies it in ONE transaction (group commit), and
only then wakes the submitters. So:

1. a state change and its TranscriptEvent always commit together (same transaction);
2. a batch is never visible half-written: if any compare-and-swap in a
   transaction fails, the transaction is rolled back and each batch is retried
   alone, so only the offending batch fails;
3. dependents start only after the commit returned, so a crash never loses a
   finished step that another step already consumed;
4. events are published to the channel layer only after the commit.

Status changes are compare-and-swap updates (``WHERE id = %s AND status = %s``)
checked against the tables in ``runs.statemachine``: the same state machine as
the ORM path, with the database as the final judge.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from runs.events import _Event, event_payload
from runs.models import Run, Step, TranscriptEvent
from runs.publish import publisher
from runs.statemachine import RUN_TERMINAL, check_run_transition, check_step_transition

log = logging.getLogger(__name__)
T = TypeVar("T")


class StaleStateError(Exception):
    """A compare-and-swap found another status than expected: someone else moved the row."""


@dataclass(slots=True)
class StepWrite:
    step_id: int
    expect: str
    status: str
    attempts: int
    result: Any
    error: str
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(slots=True)
class RunWrite:
    expect: str
    status: str
    stop_reason: str = ""


@dataclass(slots=True)
class CommittedEvent:
    """The row as written; the shape ``runs.publish.event_message`` reads."""

    run_id: int
    seq: int
    role: str
    kind: str
    payload: dict[str, Any]
    created_at: datetime


@dataclass(slots=True)
class Batch:
    run_id: int
    steps: list[StepWrite] = field(default_factory=list)
    run: RunWrite | None = None
    # (role, event) pairs, in transcript order.
    events: list[tuple[str, _Event]] = field(default_factory=list)

    def add_step(self, write: StepWrite, role: str, event: _Event) -> None:
        check_step_transition(write.expect, write.status, what=f"step {write.step_id}")
        self.steps.append(write)
        self.events.append((role, event))

    def set_run(self, write: RunWrite, role: str, event: _Event) -> None:
        check_run_transition(write.expect, write.status, what=f"run {self.run_id}")
        self.run = write
        self.events.append((role, event))

    def __bool__(self) -> bool:
        return bool(self.steps or self.run or self.events)


@dataclass(slots=True)
class _Job:
    batch: Batch | None
    call: Callable[[], Any] | None
    done: Future[Any]
    # Prepared in the submitting thread (cheap, and a bad value fails its own batch only).
    step_rows: list[tuple[Any, ...]] = field(default_factory=list)
    event_rows: list[tuple[str, str, str]] = field(default_factory=list)


_STOP = object()


class Journal:
    """One writer thread with its own database connection; see the module docstring."""

    def __init__(self, *, max_group: int = 512) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._max_group = max_group
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- submitting ------------------------------------------------------------
    def _ensure_started(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="plannerweb-journal", daemon=True
                )
                self._thread.start()

    def submit(self, batch: Batch) -> Future[list[int]]:
        """Queue a batch; the future resolves to its event seqs once committed."""
        job = _Job(batch=batch, call=None, done=Future())
        try:
            job.step_rows = [_step_row(w) for w in batch.steps]
            job.event_rows = [
                (role, event.kind, json.dumps(event_payload(event)))  # type: ignore[attr-defined]
                for role, event in batch.events
            ]
        except (TypeError, ValueError) as exc:
            job.done.set_exception(ValueError(f"state change is not JSON-serialisable: {exc}"))
            return job.done
        self._ensure_started()
        self._queue.put(job)
        return job.done

    async def commit(self, batch: Batch) -> list[int]:
        """Commit a batch from async code; returns its event seqs."""
        if not batch:
            return []
        return await asyncio.wrap_future(self.submit(batch))

    def commit_sync(self, batch: Batch) -> list[int]:
        return self.submit(batch).result() if batch else []

    def call(self, fn: Callable[[], T]) -> Future[T]:
        """Run ``fn`` on the writer thread (its own transaction), e.g. a heartbeat."""
        job = _Job(batch=None, call=fn, done=Future())
        self._ensure_started()
        self._queue.put(job)
        return job.done

    def close(self) -> None:
        """Finish queued work, close the connection, stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=30)

    # -- the writer thread -----------------------------------------------------
    def _loop(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                group = [first]
                while len(group) < self._max_group:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        self._queue.put(_STOP)
                        break
                    group.append(item)
                self._process(group)
        finally:
            connection.close()

    def _process(self, group: list[_Job]) -> None:
        calls = [j for j in group if j.call is not None]
        jobs = [j for j in group if j.batch is not None]
        if jobs:
            self._commit_group(jobs)
        for job in calls:
            try:
                with transaction.atomic():
                    result = job.call()  # type: ignore[misc]
            except Exception as exc:
                _settle(job.done, exc=exc)
                close_old_connections()
            else:
                _settle(job.done, result=result)

    def _commit_group(self, jobs: list[_Job]) -> None:
        try:
            with transaction.atomic():
                seqs, committed = _apply(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                _settle(jobs[0].done, exc=exc)
                close_old_connections()
                return
            # Find the culprit: every batch alone, so one bad batch fails only itself.
            for job in jobs:
                self._commit_group([job])
            return
        for job, job_seqs in zip(jobs, seqs, strict=True):
            _settle(job.done, result=job_seqs)
        for run_id, events in committed.items():
            publisher.submit(run_id, events)


def _settle(done: Future[Any], *, result: Any = None, exc: BaseException | None = None) -> None:
    if done.done():
        return
    if exc is not None:
        done.set_exception(exc)
    else:
        done.set_result(result)


# -- SQL ---------------------------------------------------------------------------
# Raw SQL with Django's own column preparation: the ORM's per-query compile cost
# would dominate per-step overhead, and executemany lets one transaction carry
# hundreds of transitions.
_STEP = Step._meta
_RUN = Run._meta
_EVENT = TranscriptEvent._meta


def _prep(model_meta: Any, name: str, value: Any) -> Any:
    return model_meta.get_field(name).get_db_prep_save(value, connection)


def _step_row(w: StepWrite) -> tuple[Any, ...]:
    # JSON goes through json.dumps here so a non-serialisable result fails only its batch.
    result = None if w.result is None else json.dumps(w.result)
    return (w.status, w.attempts, result, w.error, w.started_at, w.finished_at, w.step_id, w.expect)


def _apply(jobs: list[_Job]) -> tuple[list[list[int]], dict[int, list[CommittedEvent]]]:
    now = timezone.now()
    step_rows: list[tuple[Any, ...]] = []
    event_rows: list[tuple[Any, ...]] = []
    all_seqs: list[list[int]] = []
    committed: dict[int, list[CommittedEvent]] = {}
    result_field = _STEP.get_field("result")
    payload_field = _EVENT.get_field("payload")
    is_pg = connection.vendor == "postgresql"

    with connection.cursor() as cursor:
        for job in jobs:
            batch = job.batch
            assert batch is not None
            for row in job.step_rows:
                status, attempts, result, error, started, finished, step_id, expect = row
                step_rows.append(
                    (
                        status,
                        attempts,
                        # On PostgreSQL the JSON text needs the jsonb adapter; SQLite stores text.
                        result_field.get_db_prep_save(json.loads(result), connection)
                        if is_pg and result is not None
                        else result,
                        error,
                        _prep(_STEP, "started_at", started),
                        _prep(_STEP, "finished_at", finished),
                        step_id,
                        expect,
                    )
                )
            if batch.run is not None:
                _apply_run(cursor, batch.run_id, batch.run, now)
            seqs: list[int] = []
            if job.event_rows:
                n = len(job.event_rows)
                cursor.execute(
                    f"UPDATE {_RUN.db_table} SET last_seq = last_seq + %s WHERE id = %s "
                    "RETURNING last_seq",
                    [n, batch.run_id],
                )
                fetched = cursor.fetchone()
                if fetched is None:
                    raise StaleStateError(f"run {batch.run_id} does not exist")
                first = fetched[0] - n + 1
                created = _prep(_EVENT, "created_at", now)
                out = committed.setdefault(batch.run_id, [])
                for i, (role, kind, payload_json) in enumerate(job.event_rows):
                    seq = first + i
                    payload = json.loads(payload_json)
                    event_rows.append(
                        (
                            batch.run_id,
                            seq,
                            role,
                            kind,
                            payload_field.get_db_prep_save(payload, connection)
                            if is_pg
                            else payload_json,
                            created,
                        )
                    )
                    out.append(CommittedEvent(batch.run_id, seq, role, kind, payload, now))
                    seqs.append(seq)
            all_seqs.append(seqs)

        if step_rows:
            cursor.executemany(
                f"UPDATE {_STEP.db_table} SET status = %s, attempts = %s, result = %s, "
                "error = %s, started_at = %s, finished_at = %s WHERE id = %s AND status = %s",
                step_rows,
            )
            if cursor.rowcount != len(step_rows):
                raise StaleStateError(
                    f"{len(step_rows) - cursor.rowcount} step(s) were not in the expected state"
                )
        if event_rows:
            cursor.executemany(
                f"INSERT INTO {_EVENT.db_table} (run_id, seq, role, kind, payload, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                event_rows,
            )
    return all_seqs, committed


def _apply_run(cursor: Any, run_id: int, w: RunWrite, now: datetime) -> None:
    stamp = _prep(_RUN, "finished_at", now)
    if w.status in RUN_TERMINAL:
        cursor.execute(
            f"UPDATE {_RUN.db_table} SET status = %s, stop_reason = %s, finished_at = %s, "
            "lease_owner = '', lease_expires_at = NULL WHERE id = %s AND status = %s",
            [w.status, w.stop_reason, stamp, run_id, w.expect],
        )
    else:
        cursor.execute(
            f"UPDATE {_RUN.db_table} SET status = %s, started_at = COALESCE(started_at, %s) "
            "WHERE id = %s AND status = %s",
            [w.status, stamp, run_id, w.expect],
        )
    if cursor.rowcount != 1:
        raise StaleStateError(f"run {run_id} was not {w.expect!r} any more")


_journal: Journal | None = None
_journal_lock = threading.Lock()


def get_journal() -> Journal:
    """The process-wide journal (one writer thread serves every run in the process)."""
    global _journal
    with _journal_lock:
        if _journal is None:
            _journal = Journal()
        return _journal


def shutdown_journal() -> None:
    global _journal
    with _journal_lock:
        journal, _journal = _journal, None
    if journal is not None:
        journal.close()

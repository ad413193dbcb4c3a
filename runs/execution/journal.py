"""The executor's write path: checked state changes and their transcript events, one transaction each.

Why this shape (measured on the 2-vCPU target machine, see ``bench/engine.py``):
a hop to a writer thread costs ~200 µs per commit there (an idle vCPU is slow
to wake), more than the commit itself. So each executor owns a ``Journal``: a
private DB-API connection, opened *before* its event loop starts, that commits
inline. The executor's loop is dedicated to one run and not serving anybody,
so a ~0.2 ms local commit is cheaper than any hand-off; tools keep running in
their subprocesses and sockets meanwhile, and whatever finished during a commit
is recorded together in the next one (group commit falls out naturally).

Guarantees:
1. a batch (state changes + the events that record them) commits in ONE
   transaction or not at all;
2. every status change is a compare-and-swap (``WHERE id = %s AND status = %s``)
   checked first against ``runs.statemachine``'s tables: the same state machine
   as the ORM path, with the database as the final judge. A mismatch
   (someone else moved the row, e.g. a worker that took the run over) rolls the
   batch back and raises ``StaleStateError``;
3. event seqs are ``MAX(seq) + 1`` under the run's write lock, in the same
   transaction, so they are gap-free and shared safely with ``append_events``;
4. events are published to the channel layer only after the commit; each event's
   payload is serialised once (pydantic-core), and that text is both what is stored
   and what the websocket frame carries;
5. every text written (results, errors, reasons, event payloads) is redacted first
   (``runs.redaction``): one scan of the combined expression per text, and a text
   is decoded and rewritten only when the scan matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from runs.events import EncodedEvent, _Event, event_json, event_payload, event_summary_json
from runs.execution.checkpoints import Checkpointer, checkpointer_for
from runs.models import ResourceLock, Run, Step, TranscriptEvent
from runs.publish import Outgoing, carries_payload, publisher
from runs.redaction import Redactor, assign
from runs.statemachine import (
    RUN_ACTIVE,
    RUN_TERMINAL,
    STEP_TRANSITIONS,
    check_run_transition,
    check_step_transition,
)


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
    # (status, reason) from the evaluator; None leaves the row's verdict alone.
    verdict: tuple[str, str] | None = None
    # ``result`` as JSON text when the caller has it already (the executor checks every
    # result serialises); None: the journal encodes ``result`` itself.
    result_json: str | None = None


@dataclass(slots=True)
class RunWrite:
    expect: str
    status: str
    stop_reason: str = ""


@dataclass(slots=True)
class Batch:
    run_id: int
    steps: list[StepWrite] = field(default_factory=list)
    run: RunWrite | None = None
    # (role, event) pairs, in transcript order.
    events: list[tuple[str, _Event | EncodedEvent]] = field(default_factory=list)
    # Steps whose resource locks this commit releases (they finished).
    unlock: list[int] = field(default_factory=list)
    _now: datetime | None = None
    # Whether an encoded event carries text of its own (a reason) that redaction must
    # read; else an encoded event holds only the step rows' texts, which are read anyway.
    scan_events: bool = False

    def stamp(self) -> datetime:
        """One time for the changes made together (until ``restamp``).

        Taken at the first change, not when the batch was made: a batch waits for
        steps to finish. Shared values also let ``_update_steps`` write the rows
        of 98 steps starting together with one statement.
        """
        if self._now is None:
            self._now = timezone.now()
        return self._now

    def restamp(self) -> None:
        """Give the next changes a time of their own: the batch stays open for later ones."""
        self._now = None

    def add_step(self, write: StepWrite, role: str, event: _Event | EncodedEvent) -> None:
        if write.status not in STEP_TRANSITIONS.get(write.expect, ()):  # checked twice a step
            check_step_transition(write.expect, write.status, what=f"step {write.step_id}")
        self.steps.append(write)
        self.events.append((role, event))

    def set_run(self, write: RunWrite, role: str, event: _Event) -> None:
        check_run_transition(write.expect, write.status, what=f"run {self.run_id}")
        self.run = write
        self.events.append((role, event))

    def __bool__(self) -> bool:
        return bool(self.steps or self.run or self.events)


_STEP = Step._meta.db_table
_RUN = Run._meta.db_table
_EVENT = TranscriptEvent._meta.db_table
_LOCK = ResourceLock._meta.db_table
# SQLite allows one writer at a time; executors of one process queue on this
# lock (a cheap wake) instead of on SQLite's busy handler (sleeps of 1 ms and up).
_sqlite_write_lock = threading.Lock()
# Multi-row statements come in power-of-two sizes up to this many rows, so that a
# connection prepares at most nine of each kind, which its statement cache (128) keeps.
# A size of its own for every batch size re-parsed a 400-row statement (~0.9M
# instructions) about once a commit when batch sizes vary, as they do.
_INSERT_CHUNK = 256
# PostgreSQL: a whole batch in one statement of one text, column by column. Multi-row
# VALUES cost ~40 µs a row there (the server parses and plans each row); JSON goes
# in as one JSON array, since psycopg escapes every quote of a text[] item in Python.
_UPDATE_FROM_ARRAYS = (
    f"UPDATE {_STEP} AS s SET status = v.status, attempts = v.attempts, "
    "result = NULLIF(v.result, 'null'::jsonb), error = v.error, started_at = v.started_at, "
    "finished_at = v.finished_at FROM ROWS FROM (unnest(%s::text[]), unnest(%s::int[]), "
    "jsonb_array_elements(%s::jsonb), unnest(%s::text[]), unnest(%s::timestamptz[]), "
    "unnest(%s::timestamptz[]), unnest(%s::bigint[]), unnest(%s::text[])) "
    "AS v(status, attempts, result, error, started_at, finished_at, id, expect) "
    "WHERE s.id = v.id AND s.status = v.expect"
)


def _step_columns(rows: list[tuple[Any, ...]]) -> list[Any]:
    """Step rows as the column arrays ``_UPDATE_FROM_ARRAYS`` takes."""
    columns: list[Any] = [list(column) for column in zip(*rows, strict=True)]
    columns[2] = "[" + ",".join(r or "null" for r in columns[2]) + "]"  # JSON or None
    return columns


# The events, numbered after the run's last seq by the statement itself (``_write_pipelined``).
_INSERT_NUMBERED = (
    f"INSERT INTO {_EVENT} (run_id, seq, role, kind, payload, created_at) "
    f"SELECT %s, (SELECT COALESCE(MAX(seq), 0) FROM {_EVENT} WHERE run_id = %s) + e.n, "
    "e.role, e.kind, e.payload, %s FROM ROWS FROM "
    "(unnest(%s::text[]), unnest(%s::text[]), jsonb_array_elements(%s::jsonb)) "
    "WITH ORDINALITY AS e(role, kind, payload, n) RETURNING seq"
)


def _pieces(n: int) -> list[tuple[int, int]]:
    """``(start, size)`` pieces of ``n`` rows, each ``size`` a power of two <= ``_INSERT_CHUNK``."""
    pieces = []
    start, size = 0, _INSERT_CHUNK
    while start < n:
        while size > n - start:
            size //= 2
        pieces.append((start, size))
        start += size
    return pieces


def _padded(ids: list[int]) -> list[int]:
    """``ids`` (at most ``_INSERT_CHUNK``) repeated at the end up to a power of two: ``IN`` ignores repeats."""
    size = 1 << (len(ids) - 1).bit_length()
    return ids + [ids[-1]] * (size - len(ids))


class Journal:
    """A private connection that commits batches; see the module docstring."""

    def __init__(self, alias: str = DEFAULT_DB_ALIAS, *, fence: str | None = None) -> None:
        # The lease this executor holds: every commit first checks the run still
        # carries it, so a worker that lost its lease (paused past expiry, taken
        # over) cannot write another word. None skips the check.
        self.fence = fence
        # A fresh wrapper, not the thread's shared one: its raw connection is
        # used from inside the event loop, where Django's own methods refuse to run.
        self._wrapper = connections.create_connection(alias)
        self._wrapper.ensure_connection()
        self._raw = self._wrapper.connection
        self.vendor = self._wrapper.vendor
        self._ops = self._wrapper.ops
        self._sqlite = self.vendor == "sqlite"
        # SQLite stores naive UTC text when the connection's zone is UTC (the default).
        self._utc_text = self._sqlite and str(self._wrapper.timezone) == "UTC"
        self._lock = _sqlite_write_lock if self._sqlite else threading.Lock()
        # WAL checkpoints happen beside the executors, not inside their commits.
        self._checkpointer: Checkpointer | None = None
        if self._sqlite and self._raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            self._raw.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = checkpointer_for(alias)
        # JSON columns take the text as it is (SQLite) or cast it (PostgreSQL's jsonb).
        self._j = "?" if self._sqlite else "%s::jsonb"
        # Statements whose text depends on a row count, built once per count.
        self._statements: dict[tuple[str, int], str] = {}
        # A redactor per run: the policy as the executor started, and the placeholder
        # numbers already known ((kind, value) → n, in memory only).
        self._redactors: dict[int, Redactor] = {}
        self._update_one = self._sql(
            f"UPDATE {_STEP} SET status = %s, attempts = %s, result = {self._j}, "
            "error = %s, started_at = %s, finished_at = %s WHERE id = %s AND status = %s"
        )

    def close(self) -> None:
        self._wrapper.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the SQL ---------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self._sqlite else sql

    def _statement(self, name: str, n: int) -> str:
        """The ``name`` statement for ``n`` rows (a commit's hot path: built once, then looked up)."""
        sql = self._statements.get((name, n))
        if sql is None:
            if name == "alike":  # one UPDATE for n steps that change alike
                sql = (
                    f"UPDATE {_STEP} SET status = %s, attempts = %s, result = {self._j}, "
                    "error = %s, started_at = %s, finished_at = %s WHERE status = %s AND id IN ("
                    + ", ".join(["%s"] * n)
                    + ")"
                )
            else:  # "events": one multi-row INSERT
                sql = (
                    f"INSERT INTO {_EVENT} (run_id, seq, role, kind, payload, created_at) VALUES "
                    + ", ".join([f"(%s, %s, %s, %s, {self._j}, %s)"] * n)
                )
            sql = self._statements[(name, n)] = self._sql(sql)
        return sql

    def commit(self, batch: Batch, *, loop: asyncio.AbstractEventLoop | None = None) -> list[int]:
        """Write ``batch`` in one transaction and publish its events; returns their seqs.

        Safe to call from the executor's event loop (no Django connection methods
        run here) or from a helper thread (then pass the executor's ``loop``, which
        publishing prefers). Raises ``StaleStateError`` (nothing written) when a
        compare-and-swap fails, ``ValueError`` when a value is not JSON.
        """
        if not batch:
            return []
        now = timezone.now()
        stamp, step_rows, events = self._encode(batch, now)
        seqs = self._write(batch, stamp, step_rows, events)
        if self._checkpointer is not None:
            self._checkpointer.note_commit()
        if seqs:
            self._publish(batch.run_id, seqs, events, now, loop)
        return seqs

    def _encode(
        self, batch: Batch, now: datetime
    ) -> tuple[Any, list[tuple[Any, ...]], list[tuple[str, str, str, Any]]]:
        """The batch as statement parameters: (the commit's stamp, step rows, event rows)."""
        adapted: dict[datetime | None, Any] = {None: None}

        def when(value: datetime | None) -> Any:
            # Many rows of a batch share a timestamp; adapting one costs ~6 µs.
            if value not in adapted:
                if self._utc_text and value.tzinfo is UTC:  # type: ignore[union-attr]
                    # What Django's adapter returns here, at a fifth of the cost.
                    adapted[value] = str(value.replace(tzinfo=None))  # type: ignore[union-attr]
                else:
                    adapted[value] = self._ops.adapt_datetimefield_value(value)
            return adapted[value]

        stamp = when(now)
        try:
            # One row per step: a step that changed twice in the batch (started and
            # finished, say) gets its last values, checked against its first state.
            rows: dict[int, tuple[Any, ...]] = {}
            for w in batch.steps:
                earlier = rows.get(w.step_id)
                rows[w.step_id] = (
                    w.status,
                    w.attempts,
                    None
                    if w.result is None
                    else (w.result_json if w.result_json is not None else json.dumps(w.result)),
                    w.error,
                    when(w.started_at),
                    when(w.finished_at),
                    w.step_id,
                    w.expect if earlier is None else earlier[7],
                )
            events = [
                (
                    role,
                    event.kind,  # type: ignore[union-attr]
                    event.json if type(event) is EncodedEvent else event_json(event),  # type: ignore[arg-type]
                    event,
                )
                for role, event in batch.events
            ]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state change is not JSON-serialisable: {exc}") from exc
        step_rows = list(rows.values())
        self._redact(batch, step_rows, events)
        return stamp, step_rows, events

    # -- redaction ---------------------------------------------------------------------
    def _redact(
        self,
        batch: Batch,
        step_rows: list[tuple[Any, ...]],
        events: list[tuple[str, str, str, Any]],
    ) -> None:
        """Redact the batch's texts in place; a text without a sign of a secret costs a few tests.

        An encoded event (``step_status_json``) is built from its step row's result and
        error: it is read only when a row needed redaction or it carries a reason.
        """
        red = self._redactors.get(batch.run_id)
        if red is None:
            red = self._redactors[batch.run_id] = Redactor(batch.run_id, allocate=self._allocate)
        matches = red.matches
        scan_encoded = batch.scan_events
        for i, row in enumerate(step_rows):
            result, error = row[2], row[3]
            if (result is not None and matches(result)) or (error and matches(error)):
                new_result = None if result is None else red.json_text(result)
                step_rows[i] = (row[0], row[1], new_result, red.text(error), *row[4:])
                scan_encoded = True
        for w in batch.steps:
            if w.verdict is not None and matches(w.verdict[1]):
                w.verdict = (w.verdict[0], red.text(w.verdict[1]))
        if batch.run is not None and batch.run.stop_reason and matches(batch.run.stop_reason):
            batch.run.stop_reason = red.text(batch.run.stop_reason)
        for i, (role, kind, text, event) in enumerate(events):
            if type(event) is EncodedEvent and not scan_encoded:
                continue
            if matches(text) and (new := red.json_text(text)) is not text:
                events[i] = (
                    role,
                    kind,
                    new,
                    EncodedEvent(kind, new, event_summary_json(kind, new)),
                )

    def _allocate(self, run_id: int, kind: str, value: str) -> int:
        """A placeholder number for ``value`` from the run's redaction state, in a transaction."""
        with self._lock:
            cursor = self._raw.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE" if self._sqlite else "BEGIN")
                lock = "" if self._sqlite else " FOR UPDATE"
                cursor.execute(
                    self._sql(f"SELECT redaction FROM {_RUN} WHERE id = %s{lock}"), (run_id,)
                )
                row = cursor.fetchone()
                if row is None:
                    raise StaleStateError(f"run {run_id} does not exist")
                state = json.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
                n, new = assign(state, kind, value)
                if new is not None:
                    cursor.execute(
                        self._sql(f"UPDATE {_RUN} SET redaction = {self._j} WHERE id = %s"),
                        (json.dumps(new), run_id),
                    )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        return n

    def _write(
        self,
        batch: Batch,
        stamp: Any,
        step_rows: list[tuple[Any, ...]],
        events: list[tuple[str, str, str, Any]],
    ) -> list[int]:
        """Run the batch's statements in one transaction; returns the events' seqs."""
        if not self._sqlite:
            return self._write_pipelined(batch, stamp, step_rows, events)
        with self._lock:
            cursor = self._raw.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                last_seq = self._lock_run(cursor, batch.run_id)
                if batch.run is not None:
                    self._apply_run(cursor, batch.run_id, batch.run, stamp)
                if step_rows:
                    self._update_steps(cursor, batch.run_id, step_rows)
                    verdicts = [(*w.verdict, w.step_id) for w in batch.steps if w.verdict]
                    if verdicts:  # only steps whose tool has checks pay for this statement
                        cursor.executemany(
                            self._sql(
                                f"UPDATE {_STEP} SET verdict = %s, verdict_reason = %s "
                                "WHERE id = %s"
                            ),
                            verdicts,
                        )
                seqs = self._append_events(cursor, batch.run_id, events, stamp, last_seq)
                if batch.unlock or (batch.run is not None and batch.run.status not in RUN_ACTIVE):
                    self._unlock(cursor, batch)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        return seqs

    def _write_pipelined(
        self,
        batch: Batch,
        stamp: Any,
        step_rows: list[tuple[Any, ...]],
        events: list[tuple[str, str, str, Any]],
    ) -> list[int]:
        """PostgreSQL: the batch's statements in one pipeline, then COMMIT: two round trips.

        Sent one at a time, the statements cost six round trips (BEGIN, the run's lock,
        the steps, the last seq, the events, COMMIT), and on a busy machine each one
        waits for the server process to be scheduled: that wait, paid before every
        write-ahead start, was most of a non-idempotent step's overhead. The checks
        (the fence, every compare-and-swap) read their results after the one sync,
        before COMMIT is sent; a failed one rolls the whole batch back as before.
        The seqs come from the events' INSERT itself, which runs after the run's row
        lock is held, so its ``MAX(seq)`` sees every earlier writer of the run.
        """
        raw, run_id = self._raw, batch.run_id
        with self._lock:
            try:
                with raw.pipeline() as pipeline:
                    raw.execute("BEGIN")
                    owner = raw.execute(
                        f"SELECT lease_owner FROM {_RUN} WHERE id = %s FOR UPDATE", (run_id,)
                    )
                    run = (
                        raw.execute(*self._run_update(run_id, batch.run, stamp))
                        if batch.run is not None
                        else None
                    )
                    steps = None
                    if step_rows:
                        steps = raw.execute(_UPDATE_FROM_ARRAYS, _step_columns(step_rows))
                        verdicts = [(*w.verdict, w.step_id) for w in batch.steps if w.verdict]
                        if verdicts:
                            raw.cursor().executemany(
                                f"UPDATE {_STEP} SET verdict = %s, verdict_reason = %s "
                                "WHERE id = %s",
                                verdicts,
                            )
                    inserted = None
                    if events:
                        roles, kinds, texts, _ = zip(*events, strict=True)
                        payloads = "[" + ",".join(texts) + "]"  # each text is JSON already
                        inserted = raw.execute(
                            _INSERT_NUMBERED,
                            (run_id, run_id, stamp, list(roles), list(kinds), payloads),
                        )
                    if batch.unlock or (
                        batch.run is not None and batch.run.status not in RUN_ACTIVE
                    ):
                        self._unlock(raw.cursor(), batch)
                    pipeline.sync()
                    self._check_fence(owner.fetchone(), run_id)
                    if run is not None and run.rowcount != 1:
                        raise StaleStateError(f"run {run_id} was not {batch.run.expect!r} any more")  # type: ignore[union-attr]
                    if steps is not None and steps.rowcount != len(step_rows):
                        raise StaleStateError(
                            f"{len(step_rows) - steps.rowcount} step(s) of run {run_id} "
                            "were not in the expected state"
                        )
                    seqs = sorted(row[0] for row in inserted.fetchall()) if inserted else []
                    raw.execute("COMMIT")
            except BaseException:
                raw.execute("ROLLBACK")
                raise
        return seqs

    def _unlock(self, cursor: Any, batch: Batch) -> None:
        """Release the locks of the steps that finished, or all of the run's when it stops."""
        if batch.run is not None and batch.run.status not in RUN_ACTIVE:
            cursor.execute(self._sql(f"DELETE FROM {_LOCK} WHERE run_id = %s"), (batch.run_id,))
            return
        ids = batch.unlock
        cursor.execute(
            self._sql(f"DELETE FROM {_LOCK} WHERE step_id IN ({', '.join(['%s'] * len(ids))})"),
            ids,
        )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a transaction of its own, for small writes beside the batches."""
        with self._lock:
            cursor = self._raw.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE" if self._sqlite else "BEGIN")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()

    def adapt_time(self, value: datetime) -> Any:
        """``value`` as this connection stores a timestamp."""
        return self._ops.adapt_datetimefield_value(value)

    def sql(self, sql: str) -> str:
        """``sql`` with this connection's placeholders (``%s`` or SQLite's ``?``)."""
        return self._sql(sql)

    @property
    def integrity_error(self) -> type[Exception]:
        """The driver's IntegrityError (a unique constraint refused a write)."""
        return self._wrapper.Database.IntegrityError  # type: ignore[attr-defined]

    def _publish(
        self,
        run_id: int,
        seqs: list[int],
        events: list[tuple[str, str, str, Any]],
        now: datetime,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        """Hand the committed events to the publisher (sent after this commit, never before)."""
        at = now.isoformat()
        committed = [
            Outgoing(
                seq,
                role,
                kind,
                text,
                at,
                _payload(event, text) if carries_payload(kind) else None,
                event.summary if type(event) is EncodedEvent else event.summary(),
            )
            for seq, (role, kind, text, event) in zip(seqs, events, strict=True)
        ]
        if loop is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
        publisher.submit(run_id, committed, loop=loop)

    def _update_steps(self, cursor: Any, run_id: int, rows: list[tuple[Any, ...]]) -> None:
        """SQLite: compare-and-swap every row (one per step); any row not in its state fails all."""
        changed = self._update_grouped(cursor, rows)
        if changed != len(rows):
            raise StaleStateError(
                f"{len(rows) - changed} step(s) of run {run_id} were not in the expected state"
            )

    def _update_grouped(self, cursor: Any, rows: list[tuple[Any, ...]]) -> int:
        """SQLite: rows with identical new values share one statement; returns the rows changed.

        Starting 98 steps at once gives 98 identical rows but for the id: one
        ``WHERE id IN (...)`` costs a third of 98 executions.
        """
        groups: dict[tuple[Any, ...], list[int]] = {}
        singles: list[tuple[Any, ...]] = []
        for row in rows:
            if row[2] is None:  # no result: hashable, and likely shared (starts, skips)
                groups.setdefault(row[:6] + row[7:], []).append(row[6])
            else:
                singles.append(row)
        changed = 0
        for (status, attempts, result, error, started, finished, expect), ids in groups.items():
            if len(ids) == 1:  # alone: one more row of the executemany below, not a statement
                singles.append((status, attempts, result, error, started, finished, ids[0], expect))
                continue
            for start in range(0, len(ids), _INSERT_CHUNK):
                chunk = _padded(ids[start : start + _INSERT_CHUNK])
                cursor.execute(
                    self._statement("alike", len(chunk)),
                    (status, attempts, result, error, started, finished, expect, *chunk),
                )
                changed += cursor.rowcount
        if singles:
            cursor.executemany(self._update_one, singles)
            changed += cursor.rowcount
        return changed

    def _lock_run(self, cursor: Any, run_id: int) -> int:
        """SQLite: check the lease (the fence); returns the run's last seq.

        BEGIN IMMEDIATE already holds the database's write lock, so the same
        statement reads the run's last seq safely. (PostgreSQL takes the run's row
        lock in ``_write_pipelined``, and numbers the events after it.)
        """
        cursor.execute(
            f"SELECT lease_owner, (SELECT COALESCE(MAX(seq), 0) FROM {_EVENT} "
            f"WHERE run_id = ?) FROM {_RUN} WHERE id = ?",
            (run_id, run_id),
        )
        row = cursor.fetchone()
        self._check_fence(row, run_id)
        return row[1]

    def _check_fence(self, row: Any, run_id: int) -> None:
        """The run's row (its lease owner first) must exist and carry our lease."""
        if row is None:
            raise StaleStateError(f"run {run_id} does not exist")
        if self.fence is not None and row[0] != self.fence:
            raise StaleStateError(
                f"run {run_id} is leased to {row[0] or 'nobody'!r} now, not {self.fence!r}"
            )

    def _run_update(self, run_id: int, w: RunWrite, stamp: Any) -> tuple[str, tuple[Any, ...]]:
        """The statement (and its parameters) that moves the run, compare-and-swap on its status."""
        if w.status in RUN_TERMINAL:
            return (
                self._sql(
                    f"UPDATE {_RUN} SET status = %s, stop_reason = %s, finished_at = %s, "
                    "lease_owner = '', lease_expires_at = NULL WHERE id = %s AND status = %s"
                ),
                (w.status, w.stop_reason, stamp, run_id, w.expect),
            )
        return (
            self._sql(
                f"UPDATE {_RUN} SET status = %s, started_at = COALESCE(started_at, %s) "
                "WHERE id = %s AND status = %s"
            ),
            (w.status, stamp, run_id, w.expect),
        )

    def _apply_run(self, cursor: Any, run_id: int, w: RunWrite, stamp: Any) -> None:
        cursor.execute(*self._run_update(run_id, w, stamp))
        if cursor.rowcount != 1:
            raise StaleStateError(f"run {run_id} was not {w.expect!r} any more")

    def _append_events(
        self,
        cursor: Any,
        run_id: int,
        events: list[tuple[str, str, str, _Event | EncodedEvent]],
        stamp: Any,
        last_seq: int,
    ) -> list[int]:
        """SQLite: the events after ``last_seq`` (read under the write lock by ``_lock_run``)."""
        if not events:
            return []
        n = len(events)
        first = last_seq + 1
        seqs = list(range(first, first + n))
        values: list[Any] = []
        for seq, (role, kind, text, _) in zip(seqs, events, strict=True):
            values += (run_id, seq, role, kind, text, stamp)
        # Multi-row INSERTs (``_pieces``): a statement per event would double the cost.
        width = 6
        for start, size in _pieces(n):
            chunk = values[start * width : (start + size) * width]
            cursor.execute(self._statement("events", size), chunk)
        return seqs

    # -- small reads and writes the executor needs without the ORM ---------------------
    def heartbeat(self, run_id: int, lease_until: datetime) -> tuple[Any, ...]:
        """Extend our lease; return (cancel_requested_at, requested by, lease owner,
        cancel with rollback, the cancel's reason).

        The lease is only extended while it is still ours (the fence); a caller
        that gets back another owner has lost the run.
        """
        user_table = Run._meta.get_field("cancel_requested_by").related_model._meta.db_table
        with self._lock:
            cursor = self._raw.cursor()
            try:
                until = self._ops.adapt_datetimefield_value(lease_until)
                if self.fence is None:
                    sql = f"UPDATE {_RUN} SET lease_expires_at = %s WHERE id = %s"
                    args: tuple[Any, ...] = (until, run_id)
                else:
                    sql = f"UPDATE {_RUN} SET lease_expires_at = %s WHERE id = %s AND lease_owner = %s"
                    args = (until, run_id, self.fence)
                cursor.execute(self._sql(sql), args)
                cursor.execute(
                    self._sql(
                        "SELECT r.cancel_requested_at, u.username, r.lease_owner, r.cancel_rollback, "
                        f"r.cancel_reason FROM {_RUN} r "
                        f"LEFT JOIN {user_table} u ON u.id = r.cancel_requested_by_id WHERE r.id = %s"
                    ),
                    (run_id,),
                )
                row = cursor.fetchone()
            finally:
                cursor.close()
        return row if row is not None else (None, None, "", False, "")


def _payload(event: _Event | EncodedEvent, text: str) -> dict[str, Any]:
    return json.loads(text) if isinstance(event, EncodedEvent) else event_payload(event)

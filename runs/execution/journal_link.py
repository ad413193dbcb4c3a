"""A journal's database connection and the SQL that writes a batch on it.

One ``Link`` is one DB-API connection, with what is built per connection (statement
texts, SQLite's write lock and checkpointer). A ``Journal`` that owns a link commits
on it inline; journals of a worker that hosts many runs share a few links, one per
writer thread (``link_for_thread``), so a process holds a bounded number of
connections whatever the number of runs it executes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

from runs.execution.checkpoints import Checkpointer, checkpointer_for
from runs.models import ResourceLock, Run, Step, StepStatus, TranscriptEvent
from runs.statemachine import RUN_ACTIVE, RUN_TERMINAL

# ``runs.execution.journal``'s Batch and RunWrite, which import this module: named here only.
Batch = Any
RunWrite = Any


class StaleStateError(Exception):
    """A compare-and-swap found another status than expected: someone else moved the row."""


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
# PostgreSQL: a whole batch is one call of the function that migration ``runs/0027``
# installs, in its own implicit transaction (see there). Its rows come as JSON documents
# (arrays of arrays): multi-row VALUES cost ~40 µs a row on the server, and column
# arrays (``text[]``...) cost psycopg a quoted, escaped Python rendering of every item,
# 1.5-3 ms of a 100-row commit, where one JSON text, written by ``json.dumps`` in C,
# takes 0.4 ms.
_WRITE_CALL = (
    "SELECT plannerweb_journal_write(%s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, "
    "%s::bigint[], %s::jsonb, %s::jsonb, %s::bigint[], %s, %s::jsonb, %s::text)"
)
# An empty write of a run that holds a batch: it applies that batch (``apply_held``).
_APPLY_HELD = (
    "SELECT plannerweb_journal_write(id, NULL, now(), NULL, '[]'::jsonb, NULL, '{}'::bigint[], "
    "NULL, NULL, '{}'::bigint[], false, NULL, NULL) FROM runs_run WHERE id = %s AND held <> ''"
)
# The SQLSTATE the function raises when a check fails (the lease, a compare-and-swap).
_STALE_SQLSTATE = "PWSTA"

log = logging.getLogger(__name__)


_dumps = json.dumps


def _iso(value: Any) -> str:
    """A timestamp as a JSON value (``null`` for none)."""
    return "null" if value is None else f'"{value.isoformat()}"'


def _steps_json(rows: list[tuple[Any, ...]]) -> str:
    """Step rows as the function's document of single rows (results are JSON text already)."""
    times: dict[Any, str] = {None: "null"}  # many rows share a timestamp
    parts = []
    for status, attempts, result, error, started, finished, step_id, expect in rows:
        begun = times.get(started)
        if begun is None:
            begun = times[started] = _iso(started)
        ended = times.get(finished)
        if ended is None:
            ended = times[finished] = _iso(finished)
        parts.append(
            f"[{_dumps(status)},{int(attempts)},{result or 'null'},{_dumps(error)},"
            f"{begun},{ended},{int(step_id)},{_dumps(expect)}]"
        )
    return f"[{','.join(parts)}]"


def _events_json(events: list[tuple[str, str, str, Any]]) -> str:
    """Events as the function's document of events (each payload is JSON text already)."""
    return (
        f"[{','.join(f'[{_dumps(role)},{_dumps(kind)},{text}]' for role, kind, text, _ in events)}]"
    )


def _alike_groups(
    rows: list[tuple[Any, ...]],
) -> tuple[dict[tuple[Any, ...], list[int]], list[tuple[Any, ...]]]:
    """Step rows split into groups that change alike (new values and expected status → ids)
    and the rest (a result of its own, or alone in its group).

    Starting 98 steps at once gives 98 identical rows but for the id: one statement
    for them all costs a third of 98 executions (SQLite) and no document (PostgreSQL).
    """
    groups: dict[tuple[Any, ...], list[int]] = {}
    singles: list[tuple[Any, ...]] = []
    for row in rows:
        if row[2] is None:  # no result: hashable, and likely shared (starts, skips)
            groups.setdefault(row[:6] + row[7:], []).append(row[6])
        else:
            singles.append(row)
    for key in [key for key, ids in groups.items() if len(ids) == 1]:
        status, attempts, result, error, started, finished, expect = key
        singles.append(
            (status, attempts, result, error, started, finished, groups.pop(key)[0], expect)
        )
    return groups, singles


def _alike_json(groups: dict[tuple[Any, ...], list[int]]) -> str:
    """``_alike_groups``'s groups as the function's document: one array per group, ids last."""
    return (
        "["
        + ",".join(
            f"[{_dumps(status)},{int(attempts)},{_dumps(error)},{_iso(began)},{_iso(ended)},"
            f"{_dumps(expect)},[{','.join(map(str, ids))}]]"
            for (status, attempts, _, error, began, ended, expect), ids in groups.items()
        )
        + "]"
    )


def _held_document(stamp: Any, args: tuple[Any, ...]) -> str:
    """A batch's arguments as the one document the run holds (migration 0028's order)."""
    alike, steps, ids, verdicts, events, unlock, _, starting = args
    return (
        f"[{_iso(stamp)},{alike},{steps or 'null'},{_dumps(ids)},{verdicts or 'null'},"
        f"{events or 'null'},{_dumps(unlock)},{starting or 'null'}]"
    )


def _verdicts(batch: Batch) -> list[tuple[str, str, int]]:
    """The evaluator's verdicts of the batch's steps: (verdict, reason, step id)."""
    return [(*w.verdict, w.step_id) for w in batch.steps if w.verdict]


def _stops_run(batch: Batch) -> bool:
    """Whether the batch moves its run out of execution: all of the run's locks go with it."""
    return batch.run is not None and batch.run.status not in RUN_ACTIVE


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


class Link:
    """A private connection and the statements a journal commits with; see the module docstring."""

    def __init__(self, alias: str = DEFAULT_DB_ALIAS) -> None:
        # A fresh wrapper, not the thread's shared one: its raw connection is
        # used from inside the event loop, where Django's own methods refuse to run.
        self.database = database_of(alias)
        self.wrapper = _unpooled_wrapper(alias)
        self.wrapper.ensure_connection()
        self.raw = self.wrapper.connection
        self.vendor = self.wrapper.vendor
        if self.vendor == "postgresql":
            _bind_on_server(self.raw)
        self.ops = self.wrapper.ops
        self.sqlite = self.vendor == "sqlite"
        # SQLite stores naive UTC text when the connection's zone is UTC (the default).
        self.utc_text = self.sqlite and str(self.wrapper.timezone) == "UTC"
        self.lock = _sqlite_write_lock if self.sqlite else threading.Lock()
        # WAL checkpoints happen beside the executors, not inside their commits.
        self.checkpointer: Checkpointer | None = None
        if self.sqlite and self.raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            self.raw.execute("PRAGMA wal_autocheckpoint = 0")
            self.checkpointer = checkpointer_for(alias)
        # JSON columns take the text as it is (SQLite) or cast it (PostgreSQL's jsonb).
        self.j = "?" if self.sqlite else "%s::jsonb"
        # Statements whose text depends on a row count, built once per count.
        self._statements: dict[tuple[str, int], str] = {}
        self._update_one = self.sql(
            f"UPDATE {_STEP} SET status = %s, attempts = %s, result = {self.j}, "
            "error = %s, started_at = %s, finished_at = %s WHERE id = %s AND status = %s"
        )

    def close(self) -> None:
        """Close the connection (from any thread: a host closes its writer threads' links)."""
        self.wrapper.inc_thread_sharing()
        self.wrapper.close()

    def alive(self) -> bool:
        """Whether the connection answers, outside any transaction (one round trip)."""
        try:
            if not self.sqlite and (
                self.raw.closed
                or self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
            ):
                return False
            self.raw.execute("SELECT 1")
        except Exception:  # closed, or the server went away
            return False
        return True

    def sql(self, sql: str) -> str:
        """``sql`` with this connection's placeholders (``%s`` or SQLite's ``?``)."""
        return sql.replace("%s", "?") if self.sqlite else sql

    def _statement(self, name: str, n: int) -> str:
        """The ``name`` statement for ``n`` rows (a commit's hot path: built once, then looked up)."""
        sql = self._statements.get((name, n))
        if sql is None:
            if name == "alike":  # one UPDATE for n steps that change alike
                sql = (
                    f"UPDATE {_STEP} SET status = %s, attempts = %s, result = {self.j}, "
                    "error = %s, started_at = %s, finished_at = %s WHERE status = %s AND id IN ("
                    + ", ".join(["%s"] * n)
                    + ")"
                )
            else:  # "events": one multi-row INSERT
                sql = (
                    f"INSERT INTO {_EVENT} (run_id, seq, role, kind, payload, created_at) VALUES "
                    + ", ".join([f"(%s, %s, %s, %s, {self.j}, %s)"] * n)
                )
            sql = self._statements[(name, n)] = self.sql(sql)
        return sql

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a transaction of its own, for small writes beside the batches."""
        with self.lock:
            cursor = self.raw.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE" if self.sqlite else "BEGIN")
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()

    def write(
        self,
        batch: Batch,
        stamp: Any,
        step_rows: list[tuple[Any, ...]],
        events: list[tuple[str, str, str, Any]],
        fence: str | None,
    ) -> list[int]:
        """Run the batch's statements in one transaction; returns the events' seqs."""
        if not self.sqlite:
            return self._write_call(batch, stamp, step_rows, events, fence)
        with self.lock:
            cursor = self.raw.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                last_seq = self._lock_run(cursor, batch.run_id, fence)
                if batch.run is not None:
                    cursor.execute(*self._run_update(batch.run_id, batch.run, stamp))
                    if cursor.rowcount != 1:
                        raise StaleStateError(
                            f"run {batch.run_id} was not {batch.run.expect!r} any more"
                        )
                if batch.starting is not None:
                    cursor.execute(
                        f"UPDATE {_RUN} SET starting = ? WHERE id = ?",
                        (_dumps(batch.starting), batch.run_id),
                    )
                if step_rows:
                    self._update_steps(cursor, batch.run_id, step_rows)
                    verdicts = _verdicts(batch)
                    if verdicts:  # only steps whose tool has checks pay for this statement
                        cursor.executemany(
                            self.sql(
                                f"UPDATE {_STEP} SET verdict = %s, verdict_reason = %s "
                                "WHERE id = %s"
                            ),
                            verdicts,
                        )
                seqs = self._append_events(cursor, batch.run_id, events, stamp, last_seq)
                if batch.unlock or _stops_run(batch):
                    self._unlock(cursor, batch)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        if self.checkpointer is not None:
            self.checkpointer.note_commit()
        return seqs

    def _write_call(
        self,
        batch: Batch,
        stamp: Any,
        step_rows: list[tuple[Any, ...]],
        events: list[tuple[str, str, str, Any]],
        fence: str | None,
    ) -> list[int]:
        """PostgreSQL: the batch as one call of ``plannerweb_journal_write``: one round trip.

        As statements in a pipeline (BEGIN, the run's lock, the steps, the events,
        then COMMIT once the checks were read) a commit cost two round trips and a
        protocol exchange per statement on the client, 1-3 ms of a commit that starts
        98 steps; on a busy machine each exchange also waits for the server process to
        be scheduled. The function makes every check itself, the lease (the fence)
        and each compare-and-swap, and a failed one raises ``_STALE_SQLSTATE``, which
        rolls the whole batch back. The seqs come from the events' INSERT, which runs
        after the run's row lock is held, so its ``MAX(seq)`` sees every earlier writer.

        A batch marked ``hold`` goes in as one document the run's next write applies
        first (migration 0028); the seqs returned start with those of a held batch
        applied by this call, and a held batch's own come with the write that applies it.
        """
        groups, singles = _alike_groups(step_rows)
        run = batch.run
        move = (
            None
            if run is None
            else _dumps([run.status, run.expect, run.stop_reason, run.status in RUN_TERMINAL])
        )
        verdicts = _verdicts(batch)
        # p_alike … p_starting, as the function takes them.
        args = (
            _alike_json(groups),
            _steps_json(singles) if singles else None,
            [row[6] for row in singles],
            _dumps(verdicts) if verdicts else None,
            _events_json(events) if events else None,
            batch.unlock,
            _stops_run(batch),
            None if batch.starting is None else _dumps(batch.starting),
        )
        if batch.hold:
            if move is not None:
                raise ValueError("a batch that moves the run is never held")
            params: tuple[Any, ...] = (
                *(batch.run_id, fence, stamp, None, "[]", None, [], None, None, [], False),
                *(None, _held_document(stamp, args)),
            )
        else:
            params = (batch.run_id, fence, stamp, move, *args, None)
        with self.lock:
            try:
                seqs = self.raw.execute(_WRITE_CALL, params).fetchone()[0]
            except psycopg.Error as exc:
                if exc.sqlstate == _STALE_SQLSTATE:
                    raise StaleStateError(exc.diag.message_primary) from None
                raise
        return list(seqs)

    def _unlock(self, cursor: Any, batch: Batch) -> None:
        """Release the locks of the steps that finished, or all of the run's when it stops."""
        if _stops_run(batch):
            cursor.execute(self.sql(f"DELETE FROM {_LOCK} WHERE run_id = %s"), (batch.run_id,))
            return
        ids = batch.unlock
        cursor.execute(
            self.sql(f"DELETE FROM {_LOCK} WHERE step_id IN ({', '.join(['%s'] * len(ids))})"),
            ids,
        )

    def _update_steps(self, cursor: Any, run_id: int, rows: list[tuple[Any, ...]]) -> None:
        """SQLite: compare-and-swap every row (one per step); any row not in its state fails all."""
        changed = self._update_grouped(cursor, rows)
        _check_changed(changed, len(rows), run_id)

    def _update_grouped(self, cursor: Any, rows: list[tuple[Any, ...]]) -> int:
        """SQLite: each group of alike rows (``_alike_groups``) in one ``WHERE id IN (...)``,
        the rest in one ``executemany``; returns the rows changed."""
        groups, singles = _alike_groups(rows)
        changed = 0
        for (status, attempts, result, error, started, finished, expect), ids in groups.items():
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

    def _lock_run(self, cursor: Any, run_id: int, fence: str | None) -> int:
        """SQLite: check the lease (the fence); returns the run's last seq.

        BEGIN IMMEDIATE already holds the database's write lock, so the same
        statement reads the run's last seq safely. (On PostgreSQL the write function
        takes the run's row lock, and numbers the events after it.)
        """
        cursor.execute(
            f"SELECT lease_owner, (SELECT COALESCE(MAX(seq), 0) FROM {_EVENT} "
            f"WHERE run_id = ?) FROM {_RUN} WHERE id = ?",
            (run_id, run_id),
        )
        row = cursor.fetchone()
        check_fence(row, run_id, fence)
        return int(row[1])

    def _run_update(self, run_id: int, w: RunWrite, stamp: Any) -> tuple[str, tuple[Any, ...]]:
        """The statement (and its parameters) that moves the run, compare-and-swap on its status."""
        if w.status in RUN_TERMINAL:
            return (
                self.sql(
                    f"UPDATE {_RUN} SET status = %s, stop_reason = %s, finished_at = %s, "
                    "lease_owner = '', lease_expires_at = NULL, starting = '[]' "
                    "WHERE id = %s AND status = %s"
                ),
                (w.status, w.stop_reason, stamp, run_id, w.expect),
            )
        return (
            self.sql(
                f"UPDATE {_RUN} SET status = %s, started_at = COALESCE(started_at, %s) "
                "WHERE id = %s AND status = %s"
            ),
            (w.status, stamp, run_id, w.expect),
        )

    def _append_events(
        self,
        cursor: Any,
        run_id: int,
        events: list[tuple[str, str, str, Any]],
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


def _bind_on_server(raw: Any) -> None:
    """PostgreSQL: send parameters apart from the statement, and prepare it once.

    Django's cursors bind on the client (the values are quoted into the text, in
    Python) and prepare nothing, so that a pooler in transaction mode can serve
    them. This private connection runs one statement, the write function's call,
    and keeps it prepared (``PLANNERWEB_JOURNAL_PREPARED``, on unless a pooler
    forbids it). The function carries its own planner setting, so the session
    keeps none.
    """
    raw.cursor_factory = psycopg.Cursor
    if settings.PLANNERWEB_JOURNAL_PREPARED:
        raw.prepare_threshold = 0


def database_of(alias: str) -> tuple[Any, ...]:
    """Which database ``alias`` names now (a suite or test may point it at another)."""
    d = connections.settings[alias]
    return (d["ENGINE"], d["NAME"], d.get("HOST"), d.get("PORT"), d.get("USER"))


def _unpooled_wrapper(alias: str) -> BaseDatabaseWrapper:
    """A new connection wrapper for ``alias`` that opens its own connection, outside any pool.

    A link lives as long as its executor or writer thread: taken from the pool
    that serves requests (PostgreSQL's ``DATABASE_POOL_MAX_SIZE``), it would hold
    a slot for good.
    """
    settings_dict = dict(connections.settings[alias])
    options = dict(settings_dict.get("OPTIONS") or {})
    if options.pop("pool", None) is None:
        return connections.create_connection(alias)
    settings_dict["OPTIONS"] = options
    return load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)


def _check_changed(changed: int, expected: int, run_id: int) -> None:
    """Every step row of the batch must have been in its expected state (compare-and-swap)."""
    if changed != expected:
        raise StaleStateError(
            f"{expected - changed} step(s) of run {run_id} were not in the expected state"
        )


def apply_held(run_id: int, alias: str = DEFAULT_DB_ALIAS) -> None:
    """Apply the run's held batch, if any, before the run is read to decide on it.

    A worker taking the run over, or the sweeper requeueing it, then reads the rows
    and events its last writer committed, as they would be had nothing been held.
    Nothing is held on SQLite. Should a check of the batch fail (a step moved by
    someone else meanwhile), the batch is dropped rather than retried forever, and
    the steps it started become the run's start intent: the takeover records them
    started, and calls them again only when their tool allows it.
    """
    connection = connections[alias]
    if connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(_APPLY_HELD, [run_id])
    except DatabaseError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != _STALE_SQLSTATE:
            raise
        _drop_held(run_id, alias, str(exc))


def _drop_held(run_id: int, alias: str, why: str) -> None:
    """Drop a held batch that cannot be applied, keeping the steps it started as an intent."""
    with transaction.atomic(using=alias):
        run = Run.objects.using(alias).select_for_update().filter(pk=run_id).first()
        if run is None or not run.held:
            return
        # [stamp, alike groups, single rows, their ids, verdicts, events, unlock, intent]
        held = json.loads(run.held)
        started = [i for group in held[1] if group[0] == StepStatus.RUNNING for i in group[6]]
        started += [row[6] for row in held[2] or () if row[0] == StepStatus.RUNNING]
        started += held[7] or ()
        run.starting = sorted({*run.starting, *started})
        run.held = ""
        run.save(update_fields=["starting", "held"])
    log.error("run %s: a held batch could not be applied and was dropped: %s", run_id, why)


def check_fence(row: Any, run_id: int, fence: str | None) -> None:
    """The run's row (its lease owner first) must exist and carry our lease (``fence``)."""
    if row is None:
        raise StaleStateError(f"run {run_id} does not exist")
    if fence is not None and row[0] != fence:
        raise StaleStateError(
            f"run {run_id} is leased to {row[0] or 'nobody'!r} now, not {fence!r}"
        )


class _ThreadLinks(dict[str, Link]):
    """A thread's links by alias; closed when the thread ends and its locals go."""

    def __del__(self) -> None:
        for link in self.values():
            with contextlib.suppress(Exception):
                link.close()


_thread_links = threading.local()
# Every thread's kept links, so that they can all be closed at once (``close_kept_links``).
_kept: weakref.WeakSet[Link] = weakref.WeakSet()


def link_for_thread(alias: str = DEFAULT_DB_ALIAS, *, checked: bool = False) -> Link:
    """The calling thread's own link (opened on first use), kept for the thread's next runs.

    Writer threads of a worker that hosts many runs each keep one; so does the
    host's event loop thread, and every thread that executes runs one at a time
    (a fresh connection per run cost a server process, and that process's first
    statements ran cold: the run's first commit took 1.4 ms more on PostgreSQL).
    A link to another database than the alias names now is replaced. ``checked``: a
    run is about to start on it: make sure it still answers, outside any transaction
    (the server may have restarted since the last run), else open a new one.
    """
    links: _ThreadLinks | None = getattr(_thread_links, "links", None)
    if links is None:
        links = _thread_links.links = _ThreadLinks()
    link = links.get(alias)
    if link is not None and (link.database != database_of(alias) or (checked and not link.alive())):
        with contextlib.suppress(Exception):
            link.close()
        link = None
    if link is None:
        link = links[alias] = Link(alias)
        _kept.add(link)
    return link


def close_thread_links() -> None:
    """Close the calling thread's links (a writer thread that ends)."""
    links: dict[str, Link] = getattr(_thread_links, "links", None) or {}
    for link in links.values():
        with contextlib.suppress(Exception):
            link.close()
    links.clear()


def close_kept_links() -> None:
    """Close every thread's kept links (before a database is dropped, or the process ends).

    A thread that runs again after this finds its link closed (``checked``) and opens another.
    """
    for link in list(_kept):
        with contextlib.suppress(Exception):
            link.close()

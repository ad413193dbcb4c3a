"""The executor's write path: checked state changes and their transcript events, one transaction each.

Why this shape (measured on the 2-vCPU target machine, see ``bench/engine.py``):
a hop to a writer thread costs ~200 µs per commit there (an idle vCPU is slow
to wake), more than the commit itself. So an executor alone on its loop has a
``Journal`` on a private DB-API connection (a ``journal_link.Link``, kept by its
thread from run to run), opened *before* its event loop starts, that commits inline: a ~0.2 ms local commit is
cheaper than any hand-off; tools keep running in their subprocesses and
sockets meanwhile, and whatever finished during a commit is recorded together
in the next one (group commit falls out naturally). Runs hosted many to a loop
(``runs.lifecycle.host``) would stall each other that way: their journals hand
each commit to the host's writer threads instead (``commit_async``), and
commit inline only while a run is alone.

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
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from runs.events import EncodedEvent, _Event, event_json, event_payload, event_summary_json
from runs.execution.journal_link import Link, StaleStateError, link_for_thread
from runs.models import Run
from runs.publish import Outgoing, carries_payload, publisher
from runs.redaction import Redactor, assign
from runs.statemachine import STEP_TRANSITIONS, check_run_transition, check_step_transition


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
    # The run's write-ahead intent (``Run.starting``) as of this commit: the ids of the
    # steps about to start, or [] once their rows are in; None leaves it as it is.
    starting: list[int] | None = None
    # Commit the batch as one document the run's next write applies (``Journal.holds``).
    hold: bool = False
    # Commit even when empty: a batch held before is applied by this write.
    flush: bool = False
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
        return bool(
            self.steps or self.run or self.events or self.starting is not None or self.flush
        )


_RUN = Run._meta.db_table

__all__ = ["Batch", "Journal", "RunWrite", "StaleStateError", "StepWrite"]


class Journal:
    """Commits a run's batches; see the module docstring.

    An executor alone on its loop commits inline, on its thread's kept link (a
    private connection, ``journal_link.link_for_thread``). Executors hosted many to a loop pass ``offload``, the host's writer
    threads: each write then happens in one of them, on that thread's own link
    (``journal_link.link_for_thread``), and the loop goes on meanwhile.
    """

    def __init__(
        self,
        alias: str = DEFAULT_DB_ALIAS,
        *,
        fence: str | None = None,
        offload: Executor | None = None,
        offload_if: Callable[[], bool] | None = None,
    ) -> None:
        # The lease this executor holds: every commit first checks the run still
        # carries it, so a worker that lost its lease (paused past expiry, taken
        # over) cannot write another word. None skips the check.
        self.fence = fence
        self.alias = alias
        self.offload = offload
        # Hosted: whether to write in a writer thread now (else inline, on the loop
        # thread's link): a run alone on the loop stalls nobody and skips the hop.
        self.offload_if = offload_if
        # Alone on its thread: the thread's kept link (checked, since it may have idled).
        self._own = link_for_thread(alias, checked=True) if offload is None else None
        self._sqlite = connections[alias].vendor == "sqlite"  # known without connecting
        # A redactor per run: the policy as the executor started, and the placeholder
        # numbers already known ((kind, value) → n, in memory only).
        self._redactors: dict[int, Redactor] = {}
        # Per run, the events of a batch committed held (with their time), published
        # once the write that applies it returns their seqs.
        self._held: dict[int, tuple[list[tuple[str, str, str, Any]], datetime]] = {}

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing to close: the link stays with its thread, for the thread's next run."""

    def link(self) -> Link:
        """The connection to write on: the journal's own, or the calling thread's."""
        return self._own if self._own is not None else link_for_thread(self.alias)

    @property
    def holds(self) -> bool:
        """Whether a batch may be committed held (``Batch.hold``): PostgreSQL's write
        function applies a held batch with the run's next write; SQLite writes rows as
        cheaply as a document."""
        return not self._sqlite

    def _inline(self) -> bool:
        return self.offload is None or (self.offload_if is not None and not self.offload_if())

    async def call(self, work: Any, *args: Any) -> Any:
        """``work(*args)`` inline, or (hosted) in a writer thread while the loop goes on."""
        if self._inline():
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self.offload, work, *args)

    def commit(self, batch: Batch, *, loop: asyncio.AbstractEventLoop | None = None) -> list[int]:
        """Write ``batch`` in one transaction and publish its events; returns their seqs.

        A held batch (``Batch.hold``) returns none: its events get their seqs, and are
        published, with the write that applies it (the run's next one).

        Safe to call from the executor's event loop (no Django connection methods
        run here) or from a writer thread (then pass the executor's ``loop``, which
        publishing prefers). Raises ``StaleStateError`` (nothing written) when a
        compare-and-swap fails, ``ValueError`` when a value is not JSON.
        """
        if not batch:
            return []
        link = self.link()
        now = timezone.now()
        stamp, step_rows, events = self._encode(link, batch, now)
        seqs = link.write(batch, stamp, step_rows, events, self.fence)
        mine = [] if batch.hold else seqs[len(seqs) - len(events) :]
        held = self._held.pop(batch.run_id, None)
        if held is not None and len(held[0]) == len(seqs) - len(mine):
            self._publish(batch.run_id, seqs[: len(held[0])], held[0], held[1], loop)
        if batch.hold:  # its events are published once a later write applies it
            self._held[batch.run_id] = (events, now)
        if mine:
            self._publish(batch.run_id, mine, events, now, loop)
        return mine

    async def commit_async(self, batch: Batch) -> list[int]:
        """``commit`` inline, or in a writer thread (hosted), publishing on this loop."""
        if self._inline():
            return self.commit(batch)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.offload, partial(self.commit, batch, loop=loop))

    def _encode(
        self, link: Link, batch: Batch, now: datetime
    ) -> tuple[Any, list[tuple[Any, ...]], list[tuple[str, str, str, Any]]]:
        """The batch as statement parameters: (the commit's stamp, step rows, event rows)."""
        adapted: dict[datetime | None, Any] = {None: None}

        def when(value: datetime | None) -> Any:
            # Many rows of a batch share a timestamp; adapting one costs ~6 µs.
            if value not in adapted:
                if link.utc_text and value.tzinfo is UTC:  # type: ignore[union-attr]
                    # What Django's adapter returns here, at a fifth of the cost.
                    adapted[value] = str(value.replace(tzinfo=None))  # type: ignore[union-attr]
                else:
                    adapted[value] = link.ops.adapt_datetimefield_value(value)
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
        link = self.link()
        with link.transaction() as cursor:
            lock = "" if link.sqlite else " FOR UPDATE"
            cursor.execute(link.sql(f"SELECT redaction FROM {_RUN} WHERE id = %s{lock}"), (run_id,))
            row = cursor.fetchone()
            if row is None:
                raise StaleStateError(f"run {run_id} does not exist")
            state = json.loads(row[0]) if isinstance(row[0], str | bytes) else row[0]
            n, new = assign(state, kind, value)
            if new is not None:
                cursor.execute(
                    link.sql(f"UPDATE {_RUN} SET redaction = {link.j} WHERE id = %s"),
                    (json.dumps(new), run_id),
                )
        return n

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor in a transaction of its own, for small writes beside the batches."""
        with self.link().transaction() as cursor:
            yield cursor

    def adapt_time(self, value: datetime) -> Any:
        """``value`` as this connection stores a timestamp."""
        return connections[self.alias].ops.adapt_datetimefield_value(value)

    def sql(self, sql: str) -> str:
        """``sql`` with this connection's placeholders (``%s`` or SQLite's ``?``)."""
        return sql.replace("%s", "?") if self._sqlite else sql

    @property
    def integrity_error(self) -> type[Exception]:
        """The driver's IntegrityError (a unique constraint refused a write)."""
        return self.link().wrapper.Database.IntegrityError  # type: ignore[attr-defined]

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

    # -- small reads and writes the executor needs without the ORM ---------------------
    def heartbeat(self, run_id: int, lease_until: datetime) -> tuple[Any, ...]:
        """Extend our lease; return (cancel_requested_at, requested by, lease owner,
        cancel with rollback, the cancel's reason, the run's status).

        The lease is only extended while it is still ours (the fence); a caller
        that gets back another owner has lost the run.
        """
        return heartbeat_runs(self.link(), {run_id: self.fence}, lease_until)[run_id]


_NO_RUN = (None, None, "", False, "", "")


def heartbeat_runs(
    link: Link, fences: dict[int, str | None], lease_until: datetime
) -> dict[int, tuple[Any, ...]]:
    """Extend the leases of ``fences``' runs (each while it still carries its fence) in one
    statement, and read back each run's heartbeat row (see ``Journal.heartbeat``).

    A worker hosting many runs renews them all at once: a heartbeat per run
    and second would cost hundreds of transactions a second.
    """
    user_table = Run._meta.get_field("cancel_requested_by").related_model._meta.db_table
    ids = list(fences)
    marks = ", ".join(["%s"] * len(ids))
    unfenced = [run_id for run_id, fence in fences.items() if fence is None]
    owners = [fence for fence in fences.values() if fence is not None]
    with link.lock:
        cursor = link.raw.cursor()
        try:
            until = link.ops.adapt_datetimefield_value(lease_until)
            if owners:  # a lease token names one claim of one run
                cursor.execute(
                    link.sql(
                        f"UPDATE {_RUN} SET lease_expires_at = %s WHERE id IN ({marks}) "
                        f"AND lease_owner IN ({', '.join(['%s'] * len(owners))})"
                    ),
                    (until, *ids, *owners),
                )
            if unfenced:
                cursor.execute(
                    link.sql(
                        f"UPDATE {_RUN} SET lease_expires_at = %s "
                        f"WHERE id IN ({', '.join(['%s'] * len(unfenced))})"
                    ),
                    (until, *unfenced),
                )
            cursor.execute(
                link.sql(
                    "SELECT r.id, r.cancel_requested_at, u.username, r.lease_owner, "
                    f"r.cancel_rollback, r.cancel_reason, r.status FROM {_RUN} r "
                    f"LEFT JOIN {user_table} u "
                    f"ON u.id = r.cancel_requested_by_id WHERE r.id IN ({marks})"
                ),
                ids,
            )
            rows = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
        finally:
            cursor.close()
    return {run_id: rows.get(run_id, _NO_RUN) for run_id in ids}


def _payload(event: _Event | EncodedEvent, text: str) -> dict[str, Any]:
    return json.loads(text) if isinstance(event, EncodedEvent) else event_payload(event)

"""The executor's journal: atomic batches, compare-and-swap, gap-free seqs shared with other writers."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from runs.events import RunCancelRequested, RunStatusChanged, StepStatusChanged
from runs.execution.journal import Batch, Journal, RunWrite, StaleStateError, StepWrite
from runs.execution.journal_link import close_kept_links
from runs.lifecycle.submit import run_submit_plan
from runs.models import ResourceLock, Run, Step, TranscriptEvent
from runs.redaction import Redactor, redaction_counts
from runs.statemachine import NewEvent, TransitionError, append_events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run(toolset: None, key: str) -> Run:
    return run_submit_plan(
        title="t",
        document={
            "steps": [
                {"id": "a", "action": "record", "params": {"key": key, "label": "a"}},
                {"id": "b", "action": "record", "params": {"key": key, "label": "b"}},
            ]
        },
        submitted_by=None,
    )


def start(
    batch: Batch, run: Run, key: str, *, expect: str = "pending", at: datetime | None = None
) -> Batch:
    step = Step.objects.get(run=run, key=key)
    batch.add_step(
        StepWrite(step.pk, expect, "running", 1, None, "", at or timezone.now(), None),
        "executor",
        StepStatusChanged(step_id=step.pk, step=key, from_status=expect, to_status="running"),
    )
    return batch


def last_seq(run: Run) -> int:
    return TranscriptEvent.objects.filter(run=run).count()


def statuses(run: Run) -> dict[str, str]:
    return dict(Step.objects.filter(run=run).values_list("key", "status"))


def test_a_batch_commits_its_changes_and_events_together(run: Run) -> None:
    before = last_seq(run)
    with Journal() as journal:
        seqs = journal.commit(start(start(Batch(run.pk), run, "a"), run, "b"))
    assert seqs == [before + 1, before + 2]
    assert statuses(run) == {"a": "running", "b": "running"}
    events = TranscriptEvent.objects.filter(run=run, seq__in=seqs).order_by("seq")
    assert [e.payload["step"] for e in events] == ["a", "b"]


@pytest.mark.parametrize("n", [3, 300])
def test_batches_of_any_size_write_every_row_and_event_in_order(
    toolset: None, key: str, n: int
) -> None:
    # 3 steps change alike through an IN of 4 ids (one repeated), 300 through 256 then 44 + 20;
    # 300 x 2 events go out as 256+256+64+16+8 rows.
    big = run_submit_plan(
        title="t",
        document={
            "steps": [
                {"id": f"s{i}", "action": "record", "params": {"key": key, "label": str(i)}}
                for i in range(n)
            ]
        },
        submitted_by=None,
    )
    before = last_seq(big)
    batch = Batch(big.pk)
    now = timezone.now()  # one time, as the executor's batches have: the rows change alike
    for i in range(n):
        start(batch, big, f"s{i}", at=now)
        batch.events.append(("system", RunCancelRequested(by=f"u{i}")))
    with Journal() as journal:
        seqs = journal.commit(batch)
    assert seqs == list(range(before + 1, before + 2 * n + 1))
    assert set(statuses(big).values()) == {"running"}
    events = list(TranscriptEvent.objects.filter(run=big, seq__gt=before).order_by("seq"))
    assert [e.seq for e in events] == seqs
    assert [e.payload.get("step") or e.payload["by"] for e in events] == [
        x for i in range(n) for x in (f"s{i}", f"u{i}")
    ]


def test_a_stale_change_rolls_back_the_whole_batch(run: Run) -> None:
    before = last_seq(run)
    batch = start(start(Batch(run.pk), run, "a"), run, "b", expect="running")  # b is pending
    with Journal() as journal, pytest.raises(StaleStateError, match="not in the expected state"):
        journal.commit(batch)
    assert statuses(run) == {"a": "pending", "b": "pending"}
    assert last_seq(run) == before
    assert TranscriptEvent.objects.filter(run=run).count() == before


def test_a_stale_row_among_steps_that_change_alike_rolls_back_the_whole_batch(run: Run) -> None:
    with Journal() as journal:
        journal.commit(start(Batch(run.pk), run, "a"))
    before = last_seq(run)
    now = timezone.now()  # a and b would change alike, in one statement; a is running already
    batch = start(start(Batch(run.pk), run, "a", at=now), run, "b", at=now)
    with Journal() as journal, pytest.raises(StaleStateError, match="1 step"):
        journal.commit(batch)
    assert statuses(run) == {"a": "running", "b": "pending"}
    assert last_seq(run) == before


def finish(batch: Batch, run: Run, key: str, *, expect: str = "running") -> Batch:
    step = Step.objects.get(run=run, key=key)
    now = timezone.now()
    batch.add_step(
        StepWrite(step.pk, expect, "succeeded", 1, {"ok": key}, "", now, now),
        "executor",
        StepStatusChanged(step_id=step.pk, step=key, from_status=expect, to_status="succeeded"),
    )
    return batch


def test_a_step_that_changes_twice_in_a_batch_writes_its_last_row_checked_against_its_first(
    run: Run,
) -> None:
    # a starts and finishes in the batch; b only starts, alone between a's two changes.
    batch = finish(start(start(Batch(run.pk), run, "a"), run, "b"), run, "a")
    with Journal() as journal:
        seqs = journal.commit(batch)
    assert len(seqs) == 3  # every change keeps its event
    assert statuses(run) == {"a": "succeeded", "b": "running"}
    a = Step.objects.get(run=run, key="a")
    assert (a.result, a.attempts) == ({"ok": "a"}, 1)
    # The first change's expected state is what the row must be in: a is not pending any more.
    with Journal() as journal, pytest.raises(StaleStateError, match="not in the expected state"):
        journal.commit(finish(start(Batch(run.pk), run, "a"), run, "a"))
    assert statuses(run) == {"a": "succeeded", "b": "running"}
    assert last_seq(run) == seqs[-1]


def test_awkward_values_come_back_as_written(run: Run) -> None:
    # Quotes, backslashes, braces, commas and non-ASCII text in results, errors and event
    # payloads; a finish without a result; times with and without a value.
    tricky = "say \"hi\", {a,b} \\ back\\slash \u00e9t\u00e9 \U0001f680 'single' NULL"
    a, b = Step.objects.get(run=run, key="a"), Step.objects.get(run=run, key="b")
    now = timezone.now()
    batch = start(start(Batch(run.pk), run, "a"), run, "b")
    batch.add_step(
        StepWrite(
            a.pk, "running", "succeeded", 1, {"text": tricky, "list": [1, None]}, "", now, now
        ),
        "executor",
        StepStatusChanged(step_id=a.pk, step=tricky, from_status="running", to_status="succeeded"),
    )
    batch.add_step(
        StepWrite(b.pk, "running", "failed", 1, None, tricky, now, None),
        "executor",
        StepStatusChanged(step_id=b.pk, step="b", from_status="running", to_status="failed"),
    )
    with Journal() as journal:
        seqs = journal.commit(batch)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.result == {"text": tricky, "list": [1, None]}
    assert (b.status, b.result, b.error, b.finished_at) == ("failed", None, tricky, None)
    assert b.started_at == now
    event = TranscriptEvent.objects.get(run=run, seq=seqs[2])
    assert event.payload["step"] == tricky
    assert [e.seq for e in TranscriptEvent.objects.filter(run=run).order_by("seq")][-4:] == seqs


def test_an_illegal_transition_is_refused_before_anything_is_written(run: Run) -> None:
    step = Step.objects.get(run=run, key="a")
    batch = Batch(run.pk)
    with pytest.raises(TransitionError, match="cannot go from 'pending' to 'succeeded'"):
        batch.add_step(
            StepWrite(step.pk, "pending", "succeeded", 1, None, "", None, None),
            "executor",
            StepStatusChanged(
                step_id=step.pk, step="a", from_status="pending", to_status="succeeded"
            ),
        )
    assert not batch


def test_a_change_that_is_not_json_fails_without_writing(run: Run) -> None:
    step = Step.objects.get(run=run, key="a")
    batch = Batch(run.pk)
    batch.add_step(
        StepWrite(step.pk, "pending", "running", 1, {"x": object()}, "", None, None),
        "executor",
        StepStatusChanged(step_id=step.pk, step="a", from_status="pending", to_status="running"),
    )
    with Journal() as journal, pytest.raises(ValueError, match="not JSON-serialisable"):
        journal.commit(batch)
    assert Step.objects.get(pk=step.pk).status == "pending"


def test_journals_and_orm_writers_share_gap_free_seqs(run: Run) -> None:
    errors: list[BaseException] = []

    def journal_writer() -> None:
        try:
            with Journal() as journal:
                for _ in range(25):
                    batch = Batch(run.pk)
                    batch.events.append(("system", RunCancelRequested(by="j")))
                    journal.commit(batch)
        except BaseException as exc:
            errors.append(exc)

    def orm_writer() -> None:
        from django.db import connection, transaction

        try:
            for _ in range(25):
                with transaction.atomic():
                    append_events(run.pk, [NewEvent("system", RunCancelRequested(by="o"))])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=f) for f in (journal_writer, journal_writer, orm_writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    run.refresh_from_db()
    seqs = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    assert TranscriptEvent.objects.filter(run=run, kind="run.cancel_requested").count() == 75


@pytest.mark.skipif(connection.vendor != "sqlite", reason="WAL checkpoints are SQLite's")
def test_journal_commits_leave_wal_checkpoints_to_the_background_thread(run: Run) -> None:
    import time

    from runs.execution import checkpoints

    with Journal() as journal:
        raw = journal.link().raw
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        checkpointer = checkpoints.checkpointer_for(journal.link().wrapper.alias)
        before = checkpointer.checkpoints
        events = [RunCancelRequested(by=f"u{i}") for i in range(checkpoints.EVERY_COMMITS)]
        for event in events:  # events only: any number of commits is legal
            batch = Batch(run.pk)
            batch.events.append(("system", event))
            journal.commit(batch)
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints == before and time.monotonic() < deadline:
            time.sleep(0.01)
    assert checkpointer.checkpoints > before
    assert last_seq(run) >= len(events)


def test_results_errors_and_events_are_redacted_with_the_runs_placeholders(run: Run) -> None:
    # A value the ORM path numbered first keeps its number on the journal's path.
    Redactor(run.pk).text("carol@example.net")
    secret = "AKIAIOSFODNN7EXAMPLE"
    a, b = Step.objects.get(run=run, key="a"), Step.objects.get(run=run, key="b")
    now = timezone.now()
    batch = start(start(Batch(run.pk), run, "a"), run, "b")
    result = {"stdout": f"key\n{secret}\nmail carol@example.net\n"}
    batch.add_step(
        StepWrite(a.pk, "running", "succeeded", 1, result, "", now, now, result_json=None),
        "executor",
        StepStatusChanged(step_id=a.pk, step="a", from_status="running", to_status="succeeded"),
    )
    error = f"exited with status 3: denied for {secret}"
    batch.add_step(
        StepWrite(b.pk, "running", "failed", 1, None, error, now, now),
        "executor",
        StepStatusChanged(
            step_id=b.pk, step="b", from_status="running", to_status="failed", error=error
        ),
    )
    with Journal() as journal:
        seqs = journal.commit(batch)
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.result == {"stdout": "key\n[REDACTED:aws_key:1]\nmail [REDACTED:email:1]\n"}
    assert b.error == "exited with status 3: denied for [REDACTED:aws_key:1]"
    stored = TranscriptEvent.objects.get(run=run, seq=seqs[-1]).payload
    assert stored["error"] == b.error
    run.refresh_from_db()
    assert redaction_counts(run.redaction) == {"aws_key": 1, "email": 1}
    assert secret not in str(run.redaction)


def test_a_journal_whose_lease_passed_to_another_writes_nothing(run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(status="executing", lease_owner="other/1")
    before = last_seq(run)
    with Journal(fence="mine/1") as journal, pytest.raises(StaleStateError, match="leased to"):
        journal.commit(start(Batch(run.pk), run, "a"))
    assert statuses(run) == {"a": "pending", "b": "pending"}
    assert last_seq(run) == before


def test_a_run_change_that_finds_another_status_rolls_back_the_batch(run: Run) -> None:
    batch = start(Batch(run.pk), run, "a")
    batch.set_run(
        RunWrite("executing", "succeeded"),  # the run is still queued
        "executor",
        RunStatusChanged(from_status="executing", to_status="succeeded"),
    )
    with Journal() as journal, pytest.raises(StaleStateError, match="was not 'executing'"):
        journal.commit(batch)
    assert statuses(run) == {"a": "pending", "b": "pending"}


def test_finishing_a_step_releases_its_locks_and_ending_the_run_releases_all(run: Run) -> None:
    a, b = (Step.objects.get(run=run, key=k) for k in "ab")
    for step, key in ((a, "x"), (b, "y")):
        ResourceLock.objects.create(
            key=key, run=run, step=step, granted=True, created_at=timezone.now()
        )
    Run.objects.filter(pk=run.pk).update(status="executing")
    with Journal() as journal:
        journal.commit(start(start(Batch(run.pk), run, "a"), run, "b"))
        batch = finish(Batch(run.pk), run, "a")
        batch.unlock.append(a.pk)
        journal.commit(batch)
        assert list(ResourceLock.objects.values_list("key", flat=True)) == ["y"]
        batch = Batch(run.pk)
        batch.set_run(
            RunWrite("executing", "cancelled"),
            "supervisor",
            RunStatusChanged(from_status="executing", to_status="cancelled"),
        )
        journal.commit(batch)
    assert not ResourceLock.objects.exists()


def test_a_thread_keeps_its_journal_connection_from_run_to_run(run: Run) -> None:
    first = Journal().link()
    assert Journal().link() is first  # the next run on this thread writes on the same one
    elsewhere: list[object] = []
    thread = threading.Thread(target=lambda: elsewhere.append(Journal().link()))
    thread.start()
    thread.join()
    assert elsewhere and elsewhere[0] is not first  # another thread has its own


def test_a_closed_journal_connection_is_replaced_when_the_next_run_starts(run: Run) -> None:
    link = Journal().link()
    close_kept_links()  # as a server restart or a dropped connection leaves it
    assert not link.alive()
    with Journal() as journal:
        assert journal.link() is not link and journal.link().alive()
        journal.commit(start(Batch(run.pk), run, "a"))
    assert statuses(run)["a"] == "running"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner and storage")
def test_postgres_commits_find_steps_by_key_on_pages_with_room_for_their_updates(
    run: Run, settings: Any
) -> None:
    """A new database has no statistics: the write function still finds steps by key."""
    raw = Journal().link().raw
    plans: list[str] = []
    raw.add_notice_handler(lambda notice: plans.append(notice.message_primary or ""))
    for setting in (
        "LOAD 'auto_explain'",
        "SET auto_explain.log_min_duration = 0",
        "SET auto_explain.log_nested_statements = on",
        "SET auto_explain.log_level = notice",
    ):
        raw.execute(setting)
    try:
        with Journal() as journal:  # "a" and "b" start alike, then "a" finishes with a result
            journal.commit(start(start(Batch(run.pk), run, "a"), run, "b"))
            step = Step.objects.get(run=run, key="a")
            batch = Batch(run.pk)
            batch.add_step(
                StepWrite(step.pk, "running", "succeeded", 1, {"ok": True}, "", None, None),
                "executor",
                StepStatusChanged(
                    step_id=step.pk, step="a", from_status="running", to_status="succeeded"
                ),
            )
            journal.commit(batch)
    finally:
        raw.execute("SET auto_explain.log_min_duration = -1")
    updates = [plan for plan in plans if "Update on runs_step" in plan]
    assert len(updates) == 2 and all("runs_step_pkey" in plan for plan in updates)
    assert not [plan for plan in plans if "Seq Scan on runs_step" in plan]
    assert statuses(run) == {"a": "succeeded", "b": "running"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'runs_step'")
        assert cursor.fetchone()[0] == ["fillfactor=60"]
        cursor.execute("SELECT proconfig FROM pg_proc WHERE proname = 'plannerweb_journal_write'")
        assert cursor.fetchone()[0] == ["enable_seqscan=off"]  # the function's own setting
    # Behind a transaction-mode pooler the session keeps no setting of ours, prepared or not.
    for prepared in (True, False):
        settings.PLANNERWEB_JOURNAL_PREPARED = prepared
        close_kept_links()
        assert Journal().link().raw.execute("SHOW enable_seqscan").fetchone()[0] == "on"
    close_kept_links()

"""Held batches (PostgreSQL): one document in the run's row, applied first by the run's next write."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from runs.events import StepStatusChanged
from runs.execution.commit_policy import HOLD_ROWS
from runs.execution.journal import Batch, Journal, StaleStateError, StepWrite
from runs.execution.journal_link import apply_held
from runs.lifecycle.claim import run_execute
from runs.lifecycle.recovery import runs_recover
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Step, TranscriptEvent
from runs.publish import publisher

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

KEYS = ["a", "b", "c", "sink"]


@pytest.fixture
def run(toolset: None, key: str) -> Run:
    """A run whose steps a, b and c are running (their rows committed), the sink pending."""
    steps: list[dict[str, Any]] = [
        {"id": k, "action": "record", "params": {"key": key, "label": k}} for k in KEYS
    ]
    steps[-1]["depends_on"] = KEYS[:-1]
    run = run_submit_plan(title="t", document={"steps": steps}, submitted_by=None)
    Step.objects.filter(run=run, key__in=KEYS[:-1]).update(status="running", attempts=1)
    Run.objects.filter(pk=run.pk).update(status="executing")
    return run


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """(seq, step key or "") of each event handed to the publisher, in order."""
    seen: list[tuple[int, str]] = []

    def submit(run_id: int, events: list[Any], **kwargs: Any) -> None:
        seen.extend((e.seq, json.loads(e.payload_json).get("step", "")) for e in events)

    monkeypatch.setattr(publisher, "submit", submit)
    return seen


def change(batch: Batch, run: Run, key: str, expect: str, to: str, result: Any = None) -> None:
    step = Step.objects.get(run=run, key=key)
    now = timezone.now()
    write = StepWrite(step.pk, expect, to, 1, result, "", now, now if result else None)
    event = StepStatusChanged(step_id=step.pk, step=key, from_status=expect, to_status=to)
    batch.add_step(write, "executor", event)


def fan_in(run: Run) -> Batch:
    """a, b and c succeed; the sink starts: held."""
    batch = Batch(run.pk, hold=True)
    for k in KEYS[:-1]:
        change(batch, run, k, "running", "succeeded", {"label": k})
    change(batch, run, "sink", "pending", "running")
    return batch


def statuses(run: Run) -> dict[str, str]:
    return dict(Step.objects.filter(run=run).values_list("key", "status"))


def step_events(run: Run) -> list[tuple[int, str, str]]:
    events = TranscriptEvent.objects.filter(run=run, kind="step.status").order_by("seq")
    return [(e.seq, e.payload["step"], e.payload["to_status"]) for e in events]


def test_a_held_batch_writes_one_document_and_the_next_write_applies_it_first(
    run: Run, published: list[tuple[int, str]]
) -> None:
    before = TranscriptEvent.objects.filter(run=run).count()
    with Journal() as journal:
        assert journal.holds
        assert journal.commit(fan_in(run)) == []
        # Held: no row moved, no event written or published, the run holds the document.
        assert set(statuses(run).values()) == {"running", "pending"}
        assert step_events(run) == [] and published == []
        assert Run.objects.get(pk=run.pk).held.startswith("[")
        # The next write (the sink's finish) applies it first, in its transaction.
        after = Batch(run.pk)
        change(after, run, "sink", "running", "succeeded", {"label": "sink"})
        seqs = journal.commit(after)
    assert set(statuses(run).values()) == {"succeeded"}
    assert Run.objects.get(pk=run.pk).held == ""
    order = [(k, "succeeded") for k in KEYS[:-1]] + [("sink", "running"), ("sink", "succeeded")]
    assert [(k, to) for _, k, to in step_events(run)] == order
    # Gap-free, the held batch's events numbered first; each published once, in order.
    assert [seq for seq, _, _ in step_events(run)] == list(range(before + 1, before + 6))
    assert seqs == [before + 5]
    assert published == [(before + i + 1, k) for i, (k, _) in enumerate(order)]
    result = Step.objects.get(run=run, key="a")
    assert result.result == {"label": "a"} and result.finished_at is not None


def test_a_takeover_applies_a_held_batch_before_it_reads_the_run(run: Run) -> None:
    with Journal() as journal:
        journal.commit(fan_in(run))
    apply_held(run.pk)  # what load_run does first
    assert statuses(run) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "succeeded",
        "sink": "running",
    }
    assert len(step_events(run)) == 4 and Run.objects.get(pk=run.pk).held == ""
    apply_held(run.pk)  # nothing held: nothing happens
    assert len(step_events(run)) == 4


def test_a_held_batch_is_checked_under_the_lease_when_it_is_written(run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(lease_owner="another-worker")
    with Journal(fence="us") as journal, pytest.raises(StaleStateError, match="another-worker"):
        journal.commit(fan_in(run))
    assert Run.objects.get(pk=run.pk).held == ""


def test_a_held_batch_that_no_longer_applies_fails_the_next_write_and_writes_nothing(
    run: Run,
) -> None:
    with Journal() as journal:
        journal.commit(fan_in(run))
        Step.objects.filter(run=run, key="b").update(status="cancelled")  # moved by someone else
        after = Batch(run.pk)
        change(after, run, "sink", "running", "succeeded", {"label": "sink"})
        with pytest.raises(StaleStateError, match="not in the expected state"):
            journal.commit(after)
    assert statuses(run) == {"a": "running", "b": "cancelled", "c": "running", "sink": "pending"}
    assert step_events(run) == [] and Run.objects.get(pk=run.pk).held != ""


def test_a_takeover_drops_a_held_batch_that_no_longer_applies_and_keeps_its_starts_as_intent(
    run: Run,
) -> None:
    with Journal() as journal:
        journal.commit(fan_in(run))
    Step.objects.filter(run=run, key="b").update(status="cancelled")
    apply_held(run.pk)  # no loop: dropped once, and the sink's start is not forgotten
    row = Run.objects.get(pk=run.pk)
    sink = Step.objects.get(run=run, key="sink")
    assert row.held == "" and row.starting == [sink.pk]
    assert statuses(run)["a"] == "running" and step_events(run) == []


def test_the_sweeper_applies_a_held_batch_before_it_requeues_a_run_whose_worker_died(
    run: Run,
) -> None:
    with Journal() as journal:
        journal.commit(fan_in(run))
    lapsed = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(lease_owner="dead-worker", lease_expires_at=lapsed)
    DBTaskResult.objects.all().delete()  # its task was taken by the worker that died
    assert runs_recover() == [run.pk]
    assert Run.objects.get(pk=run.pk).held == ""
    assert statuses(run)["a"] == "succeeded"
    kinds = list(
        TranscriptEvent.objects.filter(run=run).order_by("seq").values_list("kind", flat=True)
    )
    assert kinds[-5:] == ["step.status"] * 4 + ["run.requeued"]


def test_a_fan_in_through_the_engine_is_held_then_applied_in_transcript_order(
    execute: Callable[..., Run],
    make_tool: Callable[..., Any],
    key: str,
    monkeypatch: pytest.MonkeyPatch,
    published: list[tuple[int, str]],
) -> None:
    held: list[int] = []
    original = Journal.commit

    def commit(self: Journal, batch: Batch, **kwargs: Any) -> list[int]:
        if batch.hold:
            held.append(len(batch.steps))
        return original(self, batch, **kwargs)

    monkeypatch.setattr(Journal, "commit", commit)
    make_tool("deploy_one", "meet", idempotent=False)  # the deploys finish together
    make_tool("announce", "record", idempotent=False)
    fan = [
        {
            "id": f"d{i}",
            "action": "deploy_one",
            "params": {"key": key, "label": f"d{i}", "parties": HOLD_ROWS},
        }
        for i in range(HOLD_ROWS)
    ]
    sink = {"id": "sink", "action": "announce", "params": {"key": key, "label": "sink"}}
    sink["depends_on"] = [s["id"] for s in fan]
    done = execute({"steps": [*fan, sink]}, max_parallel=HOLD_ROWS)
    assert done.status == "succeeded", done.stop_reason
    assert held and held[0] > HOLD_ROWS  # the finishes and the sink's start
    assert done.held == ""
    order = [(k, to) for _, k, to in step_events(done)]
    for i in range(HOLD_ROWS):
        assert order.index((f"d{i}", "succeeded")) < order.index(("sink", "running"))
    seqs = [seq for seq, _, _ in step_events(done)]
    assert sorted(seq for seq, _ in published if seq in seqs) == seqs  # each published once


def test_a_worker_claiming_the_run_applies_a_held_batch_before_it_reads_it(
    run: Run, fast_settings: Any
) -> None:
    with Journal() as journal:
        journal.commit(fan_in(run))
    lapsed = timezone.now() - timedelta(minutes=5)
    Run.objects.filter(pk=run.pk).update(lease_owner="dead-worker", lease_expires_at=lapsed)
    # Claimed straight away (its task came first), without the sweeper.
    assert run_execute(run_id=run.pk, worker_id="new-worker") == "escalated"
    run.refresh_from_db()
    assert run.stop_reason.startswith("step sink may have partly run"), run.stop_reason
    assert statuses(run) == {
        "a": "succeeded",
        "b": "succeeded",
        "c": "succeeded",
        "sink": "running",
    }
    assert run.held == ""

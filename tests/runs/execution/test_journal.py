"""The group-commit writer: atomic batches, compare-and-swap, gap-free seqs."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.utils import timezone

from runs.events import StepStatusChanged
from runs.execution.journal import Batch, Journal, StaleStateError, StepWrite
from runs.models import Run, Step, TranscriptEvent
from runs.services import run_submit_plan
from runs.statemachine import TransitionError

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


def start(run: Run, key: str, *, expect: str = "pending") -> Batch:
    step = Step.objects.get(run=run, key=key)
    batch = Batch(run.pk)
    batch.add_step(
        StepWrite(step.pk, expect, "running", 1, None, "", timezone.now(), None),
        "executor",
        StepStatusChanged(step_id=step.pk, step=key, from_status=expect, to_status="running"),
    )
    return batch


def test_one_stale_batch_fails_alone_and_its_group_still_commits(run: Run) -> None:
    journal = Journal()
    release = threading.Event()
    blocker = journal.call(lambda: release.wait(5))  # holds the writer so both batches queue up
    good = journal.submit(start(run, "a"))
    stale = journal.submit(start(run, "b", expect="running"))  # b is pending, not running
    release.set()
    blocker.result(5)
    assert len(good.result(5)) == 1
    with pytest.raises(StaleStateError):
        stale.result(5)
    journal.close()
    assert dict(Step.objects.filter(run=run).values_list("key", "status")) == {
        "a": "running",
        "b": "pending",
    }
    run.refresh_from_db()
    seqs = list(TranscriptEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, run.last_seq + 1))
    assert not TranscriptEvent.objects.filter(run=run, payload__step="b").exists()


def test_an_illegal_transition_is_refused_before_anything_is_queued(run: Run) -> None:
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


def test_a_state_change_that_is_not_json_fails_without_writing(run: Run) -> None:
    journal = Journal()
    step = Step.objects.get(run=run, key="a")
    batch = Batch(run.pk)
    batch.add_step(
        StepWrite(step.pk, "pending", "running", 1, {"x": object()}, "", None, None),
        "executor",
        StepStatusChanged(step_id=step.pk, step="a", from_status="pending", to_status="running"),
    )
    with pytest.raises(ValueError, match="not JSON-serialisable"):
        journal.submit(batch).result(5)
    journal.close()
    assert Step.objects.get(pk=step.pk).status == "pending"


def test_concurrent_writers_get_distinct_gap_free_seqs(run: Run) -> None:
    journal = Journal()
    futures: list[Any] = []
    lock = threading.Lock()

    def writer() -> None:
        for _ in range(20):
            batch = Batch(run.pk)
            batch.events.append(
                (
                    "system",
                    StepStatusChanged(
                        step_id=0, step="x", from_status="pending", to_status="pending"
                    ),
                )
            )
            with lock:
                futures.append(journal.submit(batch))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = sorted(s for f in futures for s in f.result(5))
    journal.close()
    run.refresh_from_db()
    assert got == list(range(got[0], got[0] + 80))
    assert got[-1] == run.last_seq

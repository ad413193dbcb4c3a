"""Many write-ahead steps starting together: their intent commits first, their rows while they run.

What a crash between the two leaves (the intent, the steps still ``pending``) is
taken over as if their rows had been in: recorded running, then called again only
when their tool honours idempotency keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.execution.commit_policy import ANNOUNCE_STARTS
from runs.execution.journal import Batch, Journal
from runs.execution.main_phase import ANNOUNCED
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step, TranscriptEvent
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)

FAN = ANNOUNCE_STARTS + 2


def fan_out(key: str, action: str) -> dict[str, Any]:
    """A root, then ``FAN`` steps of ``action`` that need it: they start together."""
    fan = [
        {"id": f"m{i}", "action": action, "params": {"key": key, "label": f"m{i}"}}
        for i in range(FAN)
    ]
    for step in fan:
        step["depends_on"] = ["root"]
    root = {"id": "root", "action": "record", "params": {"key": key, "label": "root"}}
    return {"steps": [root, *fan]}


def fan_ids(run: Run) -> list[int]:
    return list(
        Step.objects.filter(run=run, key__startswith="m")
        .order_by("position")
        .values_list("pk", flat=True)
    )


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch, key: str) -> Iterator[list[tuple[Batch, list[str]]]]:
    """Each batch the journal commits, with the tool calls made before it."""
    seen: list[tuple[Batch, list[str]]] = []
    original = Journal.commit

    def commit(self: Journal, batch: Batch, **kwargs: Any) -> list[int]:
        seen.append((batch, list(toolbox.CALLS[key])))
        return original(self, batch, **kwargs)

    monkeypatch.setattr(Journal, "commit", commit)
    yield seen


def test_the_intent_commits_before_any_tool_of_the_fan_out_and_their_rows_follow(
    execute: Callable[..., Run], key: str, commits: list[tuple[Batch, list[str]]]
) -> None:
    run = execute(fan_out(key, "record"), max_parallel=FAN)
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    ids = fan_ids(run)
    (intent_at,) = [i for i, (b, _) in enumerate(commits) if b.starting]
    intent, calls_before = commits[intent_at]
    # Durable before any of them is called: the root's finish and the steps' ids, not their rows.
    assert calls_before == ["root"] and sorted(intent.starting or []) == sorted(ids)
    assert {w.step_id for w in intent.steps} == {Step.objects.get(run=run, key="root").pk}
    # Their rows and events follow in a later commit, which clears the intent.
    rows_at = next(i for i, (b, _) in enumerate(commits) if any(w.step_id in ids for w in b.steps))
    rows = commits[rows_at][0]
    assert rows_at > intent_at and rows.starting == []
    assert sorted(w.step_id for w in rows.steps if w.status == "running") == sorted(ids)
    assert Run.objects.get(pk=run.pk).starting == []
    # Each step's transcript: started, then finished, after the root finished.
    events = TranscriptEvent.objects.filter(run=run, kind="step.status").order_by("seq")
    order = [(e.payload["step"], e.payload["to_status"]) for e in events]
    root_done = order.index(("root", "succeeded"))
    for i in range(FAN):
        assert root_done < order.index((f"m{i}", "running")) < order.index((f"m{i}", "succeeded"))


def crashed_after_intent(run: Run) -> list[int]:
    """Leave ``run`` as a worker killed between the intent and the fan-out's rows would."""
    ids = fan_ids(run)
    Step.objects.filter(run=run, key="root").update(
        status="succeeded", attempts=1, result={"label": "root"}
    )
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.EXECUTING,
        starting=ids,
        lease_owner="dead-worker",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    return ids


def submitted(document: dict[str, Any]) -> Run:
    run = run_submit_plan(title="t", document=document, submitted_by=None, max_parallel=FAN)
    assert run.status == RunStatus.QUEUED, run.stop_reason
    return run


def announced_events(run: Run) -> list[TranscriptEvent]:
    return list(
        TranscriptEvent.objects.filter(
            run=run, kind="step.status", payload__to_status="running", payload__reason=ANNOUNCED
        )
    )


def test_a_takeover_records_announced_steps_running_and_escalates_without_calling_them(
    execute: Callable[..., Run], key: str
) -> None:
    run = submitted(fan_out(key, "record"))
    ids = crashed_after_intent(run)
    assert run_execute(run_id=run.pk, worker_id="new-worker") == RunStatus.ESCALATED
    run.refresh_from_db()
    assert run.stop_reason.startswith("step m0 may have partly run"), run.stop_reason
    assert toolbox.CALLS[key] == []  # neither the root nor the fan-out is called again
    assert run.starting == []
    fan = Step.objects.filter(pk__in=ids)
    assert {(s.status, s.attempts) for s in fan} == {("running", 1)}
    assert sorted(e.payload["step_id"] for e in announced_events(run)) == sorted(ids)


def test_a_takeover_calls_announced_steps_again_with_their_keys_when_their_tool_honours_them(
    execute: Callable[..., Run], make_tool: Callable[..., Any], key: str
) -> None:
    make_tool("keyed", "flaky_keyed", honours_idempotency_key=True)
    run = submitted(fan_out(key, "keyed"))
    ids = crashed_after_intent(run)
    assert run_execute(run_id=run.pk, worker_id="new-worker") == RunStatus.SUCCEEDED
    keys = {s.key: str(s.idempotency_key) for s in Step.objects.filter(pk__in=ids)}
    assert sorted(toolbox.CALLS[key]) == sorted(f"{k}#1:{v}" for k, v in keys.items())
    assert len(announced_events(run)) == FAN
    requeued = TranscriptEvent.objects.filter(
        run=run, kind="step.status", payload__to_status="pending"
    )
    assert len(requeued) == FAN
    assert all("honours the step's idempotency key" in e.payload["reason"] for e in requeued)
    assert Run.objects.get(pk=run.pk).starting == []


def test_steps_the_intent_names_that_had_finished_are_left_as_they_are(
    execute: Callable[..., Run], key: str
) -> None:
    run = submitted(fan_out(key, "record"))
    ids = crashed_after_intent(run)
    Step.objects.filter(pk__in=ids).update(status="succeeded", attempts=1, result={"ok": True})
    assert run_execute(run_id=run.pk, worker_id="new-worker") == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == [] and announced_events(run) == []

"""Each transcript event says what happened in one line, the same live (websocket) and reloaded."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.events import (
    EVENT_CLASSES,
    SUMMARY_LIMIT,
    AgentToolCall,
    ElicitationAnswered,
    ElicitationAsked,
    FailureReport,
    HandoffTaken,
    PlanCreated,
    PlanDiff,
    PlannerCall,
    PlannerDecision,
    PlannerStep,
    PlaybookSaved,
    QuestionAnswered,
    QuestionAsked,
    ReviewApprovalAdded,
    ReviewAssigned,
    ReviewDecided,
    ReviewOpened,
    ReviewPlanSaved,
    RollbackPlanned,
    RunCancelRequested,
    RunCreated,
    RunRequeued,
    RunRetried,
    RunStatusChanged,
    StepClaimed,
    StepLockAcquired,
    StepLockWaiting,
    StepQueued,
    StepRetrying,
    StepStatusChanged,
    StepVerdict,
    SubplanFinished,
    SubplanStarted,
    event_json,
)
from runs.models import Run, Task, TranscriptEvent
from runs.publish import Outgoing, event_frame, event_message, outgoing_rows, publisher
from runs.statemachine import NewEvent, append_events

pytestmark = pytest.mark.django_db

# Text a summary must carry through JSON, HTML escaping and back unchanged.
TRICKY = 'needs <review> & "care" — naïve'

SAMPLES = {
    RunCreated: RunCreated(task=f"Back up {TRICKY}", submitted_by="olivia"),
    RunStatusChanged: RunStatusChanged(from_status="executing", to_status="failed", reason=TRICKY),
    RunCancelRequested: RunCancelRequested(by=None),
    RollbackPlanned: RollbackPlanned(order=["undo-b", "rollback-1"], skipped=["undo-a"]),
    PlanCreated: PlanCreated(
        plan_id=1,
        version=2,
        source="planner",
        valid=False,
        steps=0,
        errors=[{"path": "steps[0].action", "code": "unknown", "message": TRICKY}],
    ),
    StepStatusChanged: StepStatusChanged(
        step_id=1,
        step="b",
        from_status="running",
        to_status="failed",
        attempt=3,
        result={"rows": 2},
        error=TRICKY,
    ),
    StepRetrying: StepRetrying(step_id=1, step="b", attempt=2, delay_seconds=0.5, error=TRICKY),
    StepLockWaiting: StepLockWaiting(
        step_id=1, step="b", lock=f"env:{TRICKY}", held_by_run=12, held_by_step="deploy"
    ),
    StepLockAcquired: StepLockAcquired(step_id=1, step="b", locks=["env:production", TRICKY]),
    StepQueued: StepQueued(step_id=1, step=TRICKY, queue="sql", attempt=2, live_workers=0),
    StepClaimed: StepClaimed(step_id=1, step="b", queue="sql", worker=TRICKY),
    RunRequeued: RunRequeued(reason=TRICKY),
    PlaybookSaved: PlaybookSaved(name="deploy-v2", by=TRICKY),
    RunRetried: RunRetried(of_run=3, step="b", carried_over=["a", "c"], by="olivia", new_run=9),
    ReviewOpened: ReviewOpened(
        item_id=4,
        review_kind="plan_approval",
        reason=TRICKY,
        plan_version=2,
        step="b",
        required_approvals=2,
    ),
    ReviewAssigned: ReviewAssigned(item_id=4, assignee="rob", by="olivia"),
    ReviewApprovalAdded: ReviewApprovalAdded(item_id=4, by="rob", approvals=1, required=2),
    ReviewPlanSaved: ReviewPlanSaved(item_id=4, by="rob", plan_version=2, approvals_reset=1),
    ReviewDecided: ReviewDecided(
        item_id=4,
        review_kind="escalation",
        status="approved",
        decision="retry",
        by="rob",
        reason=TRICKY,
        plan_version=3,
    ),
    PlannerCall: PlannerCall(
        provider="openai",
        model="gpt-x",
        purpose="plan",
        tokens_in=10,
        tokens_out=5,
        latency_ms=120,
        error=TRICKY,
    ),
    PlannerDecision: PlannerDecision(planner="openai", mode="upfront", ok=False, detail=TRICKY),
    PlannerStep: PlannerStep(number=2, step="fetch", tool="http_get", thought=TRICKY),
    PlanDiff: PlanDiff(
        plan_id=1,
        version=2,
        parent_version=1,
        added=["x"],
        removed=["y", "z"],
        changed=[{"id": "a", "fields": ["params"]}],
        kept=["b"],
    ),
    FailureReport: FailureReport(reason=TRICKY * 20, replans=2),  # long: cut to one line
    StepVerdict: StepVerdict(step_id=1, step="b", status="warn", reason=TRICKY, check="contains"),
    AgentToolCall: AgentToolCall(
        step="look", index=2, tool="read_schema", status="failed", error=TRICKY
    ),
    QuestionAsked: QuestionAsked(item_id=1, number=1, question=TRICKY, options=["a", "b"]),
    QuestionAnswered: QuestionAnswered(item_id=1, question="Which?", answer=TRICKY, by="olivia"),
    ElicitationAsked: ElicitationAsked(
        item_id=1, step="copy", server="db", tool="copy_rows", message=TRICKY
    ),
    ElicitationAnswered: ElicitationAnswered(
        item_id=1, step="copy", action="decline", by="olivia", reason=TRICKY
    ),
    SubplanStarted: SubplanStarted(step_id=1, step="migrate", child_run_id=7, goal=TRICKY),
    SubplanFinished: SubplanFinished(
        step="migrate", child_run_id=7, status="failed", reason=TRICKY
    ),
    HandoffTaken: HandoffTaken(workflow=TRICKY, params={"env": "prod"}, steps=3),
}


def page_lines(client: Client, url: str) -> dict[int, str]:
    """The transcript lines of a rendered page by seq, as a browser shows their text."""
    rows = re.findall(
        r'<tr data-seq="(\d+)">.*?<td>([^<]*)</td></tr>', client.get(url).content.decode()
    )
    return {int(seq): html.unescape(text) for seq, text in rows}


@pytest.mark.parametrize("cls", list(EVENT_CLASSES.values()), ids=list(EVENT_CLASSES))
def test_the_live_line_of_every_event_kind_is_the_line_the_reloaded_page_shows(
    cls: type,
    reviewer: User,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sample = SAMPLES.get(cls)
    assert sample is not None, f"add a sample {cls.__name__} to SAMPLES"
    run = Run.objects.create(task=Task.objects.create(title="summaries"))
    published: list[Outgoing] = []
    monkeypatch.setattr(publisher, "submit", lambda run_id, events, **kw: published.extend(events))
    with django_capture_on_commit_callbacks(execute=True):
        append_events(run.pk, [NewEvent(TranscriptEvent.Role.SYSTEM, sample)])
    row = TranscriptEvent.objects.get(run=run)
    at = row.created_at.isoformat()
    live = [
        # what an ORM commit publishes, a frame read back from the row, an executor
        # commit's frame, and a replayed one
        published[0].framed(run.pk).frame,
        outgoing_rows([row])[0].framed(run.pk).frame,
        Outgoing(row.seq, row.role, row.kind, event_json(sample), at).framed(run.pk).frame,
        event_frame(event_message(row)),
    ]
    lines = {json.loads(frame)["summary"] for frame in live}
    assert lines == {sample.summary()}
    assert len(sample.summary()) <= SUMMARY_LIMIT and "{" not in sample.summary()
    client = Client()
    client.force_login(reviewer)
    for page in ("runs:detail", "runs:transcript"):
        assert page_lines(client, reverse(page, args=[run.pk])) == {row.seq: sample.summary()}

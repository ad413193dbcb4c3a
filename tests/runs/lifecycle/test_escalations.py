"""Escalations and step gates: opened with context, resolved with an action the executor follows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from reviews.models import AuditEntry, ReviewItem
from reviews.statemachine import ChecklistIncomplete, NotAllowed, PlanInvalid, ReviewError
from runs.lifecycle.escalations import (
    escalation_open,
    gate_resolution,
    review_resolve_escalation,
    step_gate_open,
)
from runs.lifecycle.reviews import review_approve, review_reject
from runs.models import Plan, Run, Step, TranscriptEvent
from runs.statemachine import run_transition
from tests.reviews.conftest import all_ticks, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def executing(submit, plan_doc) -> Run:  # type: ignore[no-untyped-def]
    run = submit(plan_doc)
    return run_transition(run_id=run.pk, to="executing", lease_owner="w1")


@pytest.fixture
def escalated(executing: Run) -> Run:
    """As the executor leaves it: ``read`` succeeded, ``ship`` failed, the run escalated."""
    Step.objects.filter(run=executing, key="read").update(status="succeeded", attempts=1)
    Step.objects.filter(run=executing, key="ship").update(
        status="failed", attempts=1, error="exit code 3"
    )
    return run_transition(run_id=executing.pk, to="escalated", reason="exit code 3")


def escalate(run: Run, **kw: object) -> ReviewItem:
    step_id = Step.objects.get(run=run, key="ship").pk
    return escalation_open(
        run_id=run.pk,
        cause="evaluator_fail",
        reason="exit code 3; replans exhausted",
        context={"failure": {"exit_code": 3}, "partial": {"read": "ok"}},
        step_id=step_id,
        **kw,  # type: ignore[arg-type]
    )


def test_an_escalation_carries_its_context_and_a_transcript_link(executing: Run) -> None:
    item = escalate(executing)
    assert (item.kind, item.cause, item.status) == ("escalation", "evaluator_fail", "open")
    assert item.context["failure"] == {"exit_code": 3}
    assert item.context["transcript_url"] == f"/runs/{executing.pk}/"
    assert item.step.key == "ship"  # type: ignore[union-attr]
    event = TranscriptEvent.objects.get(run=executing, kind="review.opened")
    assert event.payload["review_kind"] == "escalation" and event.payload["step"] == "ship"
    executing.refresh_from_db()
    assert executing.status == "executing"  # the executor decides what the run does meanwhile


def test_hold_run_parks_the_run_and_releases_its_lease(executing: Run) -> None:
    escalate(executing, hold_run=True)
    executing.refresh_from_db()
    assert executing.status == "awaiting_approval" and executing.lease_owner == ""


def test_an_unknown_cause_is_refused(executing: Run) -> None:
    with pytest.raises(ValueError, match="unknown escalation cause"):
        escalation_open(run_id=executing.pk, cause="bored", reason="x")


@pytest.mark.parametrize(
    ("action", "status", "run_status", "ship"),
    [
        ("retry", "approved", "queued", "pending"),
        ("skip", "approved", "queued", "skipped"),
        ("rollback", "approved", "rolling_back", "failed"),
    ],
)
def test_retry_skip_and_rollback_reopen_the_escalated_run(
    escalated: Run,
    reviewer: User,
    action: str,
    status: str,
    run_status: str,
    ship: str,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    executing = escalated
    item = escalate(executing)
    with django_capture_on_commit_callbacks() as callbacks:
        review_resolve_escalation(
            item_id=item.pk, user=reviewer, action=action, checklist=all_ticks(item)
        )
    assert callbacks or action == "rollback"  # retry/skip enqueue the resume task on commit
    run = Run.objects.get(pk=executing.pk)
    assert (run.status, run.lease_owner, run.finished_at) == (run_status, "", None)
    shipped = Step.objects.get(run=executing, key="ship")
    assert (shipped.status, shipped.attempts) == (ship, 1)  # attempts are kept
    item = ReviewItem.objects.get(pk=item.pk)
    assert (item.status, item.decision, item.decided_by) == (status, action, reviewer)


@pytest.mark.parametrize("action", ["retry", "skip", "rollback"])
def test_an_action_other_than_abort_needs_an_escalated_run(
    executing: Run, reviewer: User, action: str
) -> None:
    item = escalate(executing)
    with pytest.raises(ReviewError, match="not escalated"):
        review_resolve_escalation(
            item_id=item.pk, user=reviewer, action=action, checklist=all_ticks(item)
        )
    assert ReviewItem.objects.get(pk=item.pk).status == "open"  # nothing written


@pytest.mark.parametrize(
    ("action", "status"), [("retry", "approved"), ("skip", "approved"), ("rollback", "approved")]
)
def test_retry_skip_and_rollback_are_recorded_with_an_audit_entry(
    escalated: Run, reviewer: User, action: str, status: str
) -> None:
    executing = escalated
    item = escalate(executing)
    resolution = review_resolve_escalation(
        item_id=item.pk, user=reviewer, action=action, checklist=all_ticks(item)
    )
    assert (resolution.action, resolution.run_id, resolution.step_id) == (
        action,
        executing.pk,
        item.step_id,
    )
    item.refresh_from_db()
    assert (item.status, item.decision, item.decided_by) == (status, action, reviewer)
    assert AuditEntry.objects.filter(item_id=item.pk, action=f"escalation.{action}").exists()


def test_abort_needs_a_reason_and_stops_the_run(executing: Run, reviewer: User) -> None:
    item = escalate(executing, hold_run=True)
    with pytest.raises(ReviewError, match="reason"):
        review_resolve_escalation(item_id=item.pk, user=reviewer, action="abort")
    review_resolve_escalation(item_id=item.pk, user=reviewer, action="abort", reason="too risky")
    run = Run.objects.get(pk=executing.pk)
    assert run.status == "cancelled"
    assert run.stop_reason == "aborted by rob after escalation: too risky"


def test_abort_of_an_escalated_run_cancels_it_and_its_unfinished_steps(
    escalated: Run, reviewer: User
) -> None:
    item = escalate(escalated)
    review_resolve_escalation(item_id=item.pk, user=reviewer, action="abort", reason="too risky")
    run = Run.objects.get(pk=escalated.pk)
    assert run.status == "cancelled" and run.finished_at is not None
    assert run.stop_reason.startswith("aborted: abort decided by rob")


def test_edit_and_resume_stores_a_validated_version_by_the_reviewer(
    escalated: Run, reviewer: User, key: str
) -> None:
    executing = escalated
    item = escalate(executing)
    with pytest.raises(PlanInvalid):
        review_resolve_escalation(
            item_id=item.pk,
            user=reviewer,
            action="edit",
            checklist=all_ticks(item),
            document={"steps": [step("x", "nope", key)]},
        )
    assert Plan.objects.filter(run=executing).count() == 1
    resolution = review_resolve_escalation(
        item_id=item.pk,
        user=reviewer,
        action="edit",
        checklist=all_ticks(item),
        document={"steps": [step("read", "record", key)]},
    )
    plan = Plan.objects.get(pk=resolution.plan_id)
    assert (plan.version, plan.source, plan.created_by) == (2, "reviewer", reviewer)
    item.refresh_from_db()
    assert item.status == "edited" and item.result_plan == plan
    run = Run.objects.get(pk=executing.pk)
    assert (run.status, run.current_plan_id) == ("queued", plan.pk)
    carried = Step.objects.get(plan=plan, key="read")
    assert carried.status == "succeeded"  # finished work is carried over, never re-run


def test_resolving_needs_the_checklist_and_a_known_action(escalated: Run, reviewer: User) -> None:
    item = escalate(escalated)
    with pytest.raises(ChecklistIncomplete):
        review_resolve_escalation(item_id=item.pk, user=reviewer, action="retry")
    with pytest.raises(ReviewError, match="Unknown action"):
        review_resolve_escalation(item_id=item.pk, user=reviewer, action="pray")
    with pytest.raises(NotAllowed):
        review_approve(item_id=item.pk, user=reviewer, checklist=all_ticks(item))


def test_a_gated_step_is_run_or_skipped_by_the_reviewers_decision(
    executing: Run, reviewer: User
) -> None:
    ship = Step.objects.get(run=executing, key="ship")
    gate = step_gate_open(step_id=ship.pk, threshold=0.6)
    assert gate.kind == "step_gate" and gate_resolution(gate) is None
    assert "below 0.6" in gate.reason_opened
    approved = review_approve(item_id=gate.pk, user=reviewer, checklist=all_ticks(gate))
    assert gate_resolution(approved).action == "run"  # type: ignore[union-attr]
    other = step_gate_open(step_id=ship.pk, threshold=0.6)
    rejected = review_reject(item_id=other.pk, user=reviewer, reason="params look wrong")
    assert gate_resolution(rejected).action == "skip"  # type: ignore[union-attr]
    assert Run.objects.get(pk=executing.pk).status == "executing"

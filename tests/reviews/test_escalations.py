"""Escalations and step gates: opened with context, resolved with an action the executor follows."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from reviews.escalations import (
    escalation_open,
    gate_resolution,
    review_resolve_escalation,
    step_gate_open,
)
from reviews.models import AuditEntry, ReviewItem
from reviews.services import (
    ChecklistIncomplete,
    NotAllowed,
    PlanInvalid,
    ReviewError,
    review_approve,
    review_reject,
)
from runs.models import Plan, Run, Step, TranscriptEvent
from runs.statemachine import run_transition
from tests.reviews.conftest import all_ticks, step

pytestmark = pytest.mark.django_db


@pytest.fixture
def executing(submit, plan_doc) -> Run:  # type: ignore[no-untyped-def]
    run = submit(plan_doc)
    return run_transition(run_id=run.pk, to="executing", lease_owner="w1")


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
    ("action", "status"), [("retry", "approved"), ("skip", "approved"), ("rollback", "approved")]
)
def test_retry_skip_and_rollback_are_recorded_for_the_executor(
    executing: Run, reviewer: User, action: str, status: str
) -> None:
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


def test_edit_and_resume_stores_a_validated_version_by_the_reviewer(
    executing: Run, reviewer: User, key: str
) -> None:
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


def test_resolving_needs_the_checklist_and_a_known_action(executing: Run, reviewer: User) -> None:
    item = escalate(executing)
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

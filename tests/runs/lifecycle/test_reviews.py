"""Plan approval end to end: the run waits, then executes exactly the version a reviewer let through."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from reviews.decisions import Binding
from reviews.models import ApprovalPolicy, AuditEntry, ReviewItem
from reviews.statemachine import PlanInvalid, ReviewError, StalePlan
from runs.lifecycle.claim import run_execute
from runs.lifecycle.reviews import review_approve, review_edit, review_reject
from runs.models import Plan, Run, Step, TranscriptEvent
from runs.plan_versions import plan_hash
from tests.reviews.conftest import all_ticks, step
from tests.runs import toolbox

pytestmark = pytest.mark.django_db(transaction=True)


def kinds(run: Run) -> list[str]:
    return list(
        TranscriptEvent.objects.filter(run=run).order_by("seq").values_list("kind", flat=True)
    )


def pass_gate(run: Run, reviewer: User) -> str:
    """Approve the run's open step gate and resume it as the worker would."""
    gate = ReviewItem.objects.get(run=run, kind="step_gate", status="open")
    review_approve(item_id=gate.pk, user=reviewer, checklist=all_ticks(gate))
    return run_execute(run_id=run.pk)


def test_a_held_run_waits_for_a_reviewer_and_holds_no_worker(held: ReviewItem) -> None:
    run = held.run
    run.refresh_from_db()
    assert run.status == "awaiting_approval"
    assert run.lease_owner == ""
    # A worker that tries anyway gets nothing and nothing runs.
    assert run_execute(run_id=run.pk) == "awaiting_approval"
    assert set(Step.objects.filter(run=run).values_list("status", flat=True)) == {"pending"}
    assert "review.opened" in kinds(run)
    assert held.kind == "plan_approval" and held.status == "open"
    assert held.plan_id == run.current_plan_id
    assert held.due_at is not None and held.checklist


def test_an_approved_plan_runs_to_success(held: ReviewItem, reviewer: User, key: str) -> None:
    item = review_approve(item_id=held.pk, user=reviewer, checklist=all_ticks(held))
    assert item.status == "approved" and item.decided_by == reviewer
    run = Run.objects.get(pk=held.run_id)
    assert run.status == "queued"
    # ship is a low-confidence step on a sensitive tool: it still stops at its gate.
    assert run_execute(run_id=run.pk) == "awaiting_approval"
    assert toolbox.CALLS[key] == ["read"]
    assert pass_gate(run, reviewer) == "succeeded"
    assert toolbox.CALLS[key] == ["read", "ship"]
    assert kinds(run).index("review.decided") < kinds(run).index("step.status")
    assert AuditEntry.objects.filter(item_id=held.pk, action="review.approved").count() == 1


def test_an_edited_plan_runs_the_edited_version_never_the_original(
    held: ReviewItem, reviewer: User, key: str
) -> None:
    edited = {
        "goal": "ship it carefully",
        "steps": [
            step("read", "record", key),
            step("announce", "notify", key, ("read",)),
            step("ship", "deploy", key, ("announce",)),
        ],
    }
    item = review_edit(
        item_id=held.pk,
        user=reviewer,
        document=edited,
        binding=Binding(plan_version=1, plan_hash=plan_hash(held.plan)),
        reason="warn first",
    )
    # Saved, not run: the item waits for an approval of the new version.
    assert item.status == "open"
    new = item.result_plan
    assert new is not None and item.plan == new
    assert (new.version, new.source, new.created_by, new.parent_id) == (
        2,
        "reviewer",
        reviewer,
        held.plan_id,
    )
    assert Run.objects.get(pk=held.run_id).status == "awaiting_approval"
    assert toolbox.CALLS[key] == []
    # An approval naming the version it was shown (v1) is stale now.
    with pytest.raises(StalePlan):
        review_approve(
            item_id=held.pk,
            user=reviewer,
            binding=Binding(plan_version=1),
            checklist=all_ticks(held),
        )
    review_approve(
        item_id=held.pk,
        user=reviewer,
        binding=Binding(plan_version=2, plan_hash=plan_hash(new)),
        checklist=all_ticks(held),
    )
    run = Run.objects.get(pk=held.run_id)
    assert run.current_plan_id == new.pk and run.status == "queued"
    assert run_execute(run_id=run.pk) == "succeeded"
    assert toolbox.CALLS[key] == ["read", "announce", "ship"]
    # The original version's steps never ran.
    assert set(Step.objects.filter(plan=held.plan).values_list("status", flat=True)) == {"pending"}


def test_an_invalid_edit_reports_every_problem_and_writes_nothing(
    held: ReviewItem, reviewer: User, key: str
) -> None:
    bad = {"steps": [step("a", "no_such_tool", key), step("b", "record", key, ("missing",))]}
    audit_before = AuditEntry.objects.count()
    with pytest.raises(PlanInvalid) as caught:
        review_edit(item_id=held.pk, user=reviewer, document=bad, checklist=all_ticks(held))
    paths = {p["path"] for p in caught.value.problems}
    assert len(caught.value.problems) >= 2, caught.value.problems
    assert any(p.startswith("steps[0]") for p in paths) and any(
        p.startswith("steps[1]") for p in paths
    )
    held.refresh_from_db()
    assert held.status == "open"
    assert Plan.objects.filter(run=held.run).count() == 1
    assert AuditEntry.objects.count() == audit_before


def test_a_rejected_plan_ends_its_run_cancelled_with_the_reason(
    held: ReviewItem, reviewer: User
) -> None:
    item = review_reject(item_id=held.pk, user=reviewer, reason="wrong cluster")
    assert item.status == "rejected"
    run = Run.objects.get(pk=held.run_id)
    assert run.status == "cancelled"
    assert run.stop_reason == "plan v1 rejected by rob: wrong cluster"
    assert set(Step.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}


def test_a_rejection_needs_a_reason(held: ReviewItem, reviewer: User) -> None:
    with pytest.raises(ReviewError, match="reason"):
        review_reject(item_id=held.pk, user=reviewer, reason="   ")
    held.refresh_from_db()
    assert held.status == "open"


def test_a_plan_the_policy_lets_through_is_queued_at_once(
    submit: Callable[..., Run], plan_doc: dict, global_policy: Callable[..., ApprovalPolicy]
) -> None:
    global_policy("never")
    run = submit(plan_doc)
    assert run.status == "queued"
    assert not ReviewItem.objects.filter(run=run).exists()


def test_approving_after_the_operator_cancelled_closes_the_item(
    held: ReviewItem, reviewer: User, operator: User
) -> None:
    from runs.lifecycle.cancel import run_cancel

    run_cancel(run_id=held.run_id, user=operator)
    item = review_approve(item_id=held.pk, user=reviewer, checklist=all_ticks(held))
    assert item.status == "expired" and item.decision == "run_ended"
    assert Run.objects.get(pk=held.run_id).status == "cancelled"

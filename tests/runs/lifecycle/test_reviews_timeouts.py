"""SLA timeouts: overdue items get their kind's action, recorded in the transcript and the audit."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reviews.models import AuditEntry, ReviewItem, ReviewKindSettings
from reviews.policies import kind_settings
from reviews.statemachine import AlreadyDecided
from runs.lifecycle.escalations import step_gate_open
from runs.lifecycle.reviews import review_approve, review_expire_overdue
from runs.models import Run, Step, TranscriptEvent
from tests.reviews.conftest import all_ticks

pytestmark = pytest.mark.django_db


def set_timeout(kind: str, action: str, sla: int = 10) -> ReviewKindSettings:
    row = kind_settings(kind)
    row.timeout_action, row.sla_minutes = action, sla
    row.save()
    return row


def later(minutes: int) -> timezone.datetime:
    return timezone.now() + timedelta(minutes=minutes)


def test_an_overdue_plan_is_auto_rejected_and_its_run_cancelled(held: ReviewItem) -> None:
    set_timeout("plan_approval", "auto_reject")
    assert review_expire_overdue(now=held.due_at - timedelta(seconds=1)) == []
    assert review_expire_overdue(now=held.due_at + timedelta(seconds=1)) == [held.pk]
    held.refresh_from_db()
    assert (held.status, held.decision, held.decided_by) == ("expired", "auto_reject", None)
    run = Run.objects.get(pk=held.run_id)
    assert run.status == "cancelled" and "rejected automatically" in run.stop_reason
    event = TranscriptEvent.objects.get(run=run, kind="review.decided")
    assert (event.role, event.payload["decision"]) == ("supervisor", "auto_reject")
    assert AuditEntry.objects.get(item_id=held.pk, action="review.expired").actor_name == "system"


def test_kinds_without_a_timeout_action_stay_open_and_overdue(held: ReviewItem) -> None:
    assert kind_settings("plan_approval").timeout_action == "none"
    assert review_expire_overdue(now=later(24 * 60)) == []
    held.refresh_from_db()
    assert held.status == "open"


def test_a_timed_out_gate_with_auto_reject_skips_the_step_and_the_run_goes_on(
    held: ReviewItem, reviewer: User
) -> None:
    review_approve(item_id=held.pk, user=reviewer, checklist=all_ticks(held))
    set_timeout("step_gate", "auto_reject")
    step = Step.objects.get(plan=held.plan, key="ship")
    gate = step_gate_open(step_id=step.pk, threshold=0.6)
    assert review_expire_overdue(now=later(60)) == [gate.pk]
    gate.refresh_from_db()
    from runs.lifecycle.escalations import gate_resolution

    assert gate_resolution(gate).action == "skip"  # type: ignore[union-attr]
    assert Run.objects.get(pk=held.run_id).status == "queued"


def test_auto_abort_stops_the_run(held: ReviewItem) -> None:
    set_timeout("plan_approval", "auto_abort")
    review_expire_overdue(now=later(60))
    run = Run.objects.get(pk=held.run_id)
    assert run.status == "cancelled" and "aborted automatically" in run.stop_reason


def test_a_reviewer_deciding_after_expiry_hears_it_was_the_system(
    held: ReviewItem, reviewer: User
) -> None:
    set_timeout("plan_approval", "auto_reject")
    review_expire_overdue(now=later(60))
    with pytest.raises(AlreadyDecided, match="already expired by the system"):
        review_approve(item_id=held.pk, user=reviewer, checklist=all_ticks(held))


@pytest.mark.django_db(transaction=True)
def test_a_worker_applies_overdue_timeouts_on_its_recovery_sweep(held: ReviewItem) -> None:
    from runs.lifecycle.worker import RunWorker

    set_timeout("plan_approval", "auto_reject")
    ReviewItem.objects.filter(pk=held.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    RunWorker(worker_id="w-sweep", batch=True, recovery_seconds=0.001).run()
    held.refresh_from_db()
    assert (held.status, held.decision) == ("expired", "auto_reject")

"""Plan, then confirm: a planner's plan waits for its submitter when unsure or sensitive."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import AuditEntry, ReviewItem, ReviewKind, ReviewStatus
from reviews.statemachine import NotAllowed, PlanInvalid
from runs.lifecycle.cancel import run_cancel
from runs.lifecycle.claim import run_execute
from runs.lifecycle.confirmation import (
    ConfirmChoiceError,
    NotYours,
    StaleConfirmation,
    confirm_choice,
    run_confirm,
    run_discard,
)
from runs.lifecycle.errors import RunError
from runs.lifecycle.planning import run_plan, run_submit_task
from runs.lifecycle.reviews import review_approve, review_reject
from runs.models import Plan, Run, RunStatus, Tool
from tests.reviews.conftest import all_ticks
from tests.runs.planning.conftest import good_plan
from tests.runs.planning.test_planner import scripted

pytestmark = pytest.mark.django_db(transaction=True)


def _planned(
    monkeypatch: pytest.MonkeyPatch, user: User, plan: Any, confirm: str | None = None
) -> Run:
    scripted(monkeypatch, "openai", plan)
    run = run_submit_task(
        title="record two labels", submitted_by=user, planner="openai", confirm_plan=confirm
    )
    run_plan(run_id=run.pk)
    run.refresh_from_db()
    return run


def _item(run: Run) -> ReviewItem:
    return ReviewItem.objects.get(run=run, kind=ReviewKind.CONFIRMATION)


def test_a_low_confidence_plan_waits_for_its_submitter_holding_no_worker(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert run.lease_owner == "" and run.lease_expires_at is None
    item = _item(run)
    assert item.status == ReviewStatus.OPEN and item.plan_id == run.current_plan_id
    assert "confidence 0.38 is below 0.7" in item.reason_opened
    assert run.steps.filter(status="pending").count() == 2  # nothing ran
    kinds = list(run.events.values_list("kind", flat=True))
    assert kinds[-2:] == ["review.opened", "run.status"]


def test_a_sure_plan_on_harmless_tools_runs_at_once_and_never_opts_out(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    sure = _planned(monkeypatch, operator, good_plan(confidence=0.95))
    assert sure.status == RunStatus.EXECUTING
    unsure = _planned(monkeypatch, operator, good_plan(confidence=0.1), confirm="never")
    assert unsure.status == RunStatus.EXECUTING
    assert not ReviewItem.objects.filter(kind=ReviewKind.CONFIRMATION).exists()


def test_always_asks_and_a_sensitive_tool_asks_under_auto(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    always = _planned(monkeypatch, operator, good_plan(confidence=0.99), confirm="always")
    assert always.status == RunStatus.AWAITING_APPROVAL
    Tool.objects.filter(name="record").update(sensitive=True)
    sensitive = _planned(monkeypatch, operator, good_plan(confidence=0.99))
    assert sensitive.status == RunStatus.AWAITING_APPROVAL
    assert "uses the sensitive tool 'record'" in _item(sensitive).reason_opened


def test_the_default_comes_from_settings_and_an_unknown_choice_is_refused(
    settings: Any, operator: User
) -> None:
    settings.PLANNERWEB_CONFIRM_PLANS = "always"
    assert confirm_choice(None) == "always"
    assert confirm_choice("never") == "never"
    with pytest.raises(ConfirmChoiceError):
        confirm_choice("sometimes")
    with pytest.raises(ConfirmChoiceError):
        run_submit_task(title="t", submitted_by=operator, planner="playbook", confirm_plan="x")
    assert not Run.objects.exists()


def test_confirming_queues_the_run_and_it_executes_the_confirmed_plan(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    confirmed = run_confirm(run_id=run.pk, user=operator, plan_version=1, reason="looks right")
    assert confirmed.status == RunStatus.QUEUED
    item = _item(run)
    assert (item.status, item.decision, item.decided_by) == ("approved", "confirm", operator)
    assert AuditEntry.objects.filter(action="review.confirmed", item_id=item.pk).exists()
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED


def test_an_edit_is_stored_as_a_new_version_and_that_version_runs(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    edited = good_plan("edited", confidence=0.38)
    edited["steps"] = edited["steps"][:1]
    run_confirm(run_id=run.pk, user=operator, document=edited)
    run.refresh_from_db()
    plan = Plan.objects.get(run=run, version=2)
    assert (plan.source, plan.parent.version, run.current_plan_id) == ("operator", 1, plan.pk)
    assert _item(run).status == ReviewStatus.EDITED
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert run.steps.filter(plan=plan).count() == 1


def test_an_invalid_edit_writes_nothing(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    bad = {"goal": "x", "steps": [{"id": "a", "action": "launch_rockets"}]}
    with pytest.raises(PlanInvalid):
        run_confirm(run_id=run.pk, user=operator, document=bad)
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL and run.plans.count() == 1
    assert _item(run).status == ReviewStatus.OPEN


def test_discarding_cancels_the_run_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    discarded = run_discard(run_id=run.pk, user=operator, reason="wrong environment")
    assert discarded.status == RunStatus.CANCELLED
    assert "discarded by olivia: wrong environment" in discarded.stop_reason
    assert _item(run).decision == "discard"
    assert not run.steps.exclude(status="cancelled").exists()
    with pytest.raises(RunError):
        run_confirm(run_id=run.pk, user=operator)


def test_only_the_submitter_or_an_operator_decides_and_a_stale_version_is_refused(
    monkeypatch: pytest.MonkeyPatch, operator: User, reviewer: User, planner_tools: Any
) -> None:
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    with pytest.raises(NotYours):
        run_confirm(run_id=run.pk, user=reviewer)
    with pytest.raises(NotYours):
        run_discard(run_id=run.pk, user=reviewer)
    with pytest.raises(StaleConfirmation):
        run_confirm(run_id=run.pk, user=operator, plan_version=2)
    # A reviewer cannot decide it from the queue either: it is the submitter's.
    with pytest.raises(NotAllowed):
        review_approve(item_id=_item(run).pk, user=reviewer)
    with pytest.raises(NotAllowed):
        review_reject(item_id=_item(run).pk, user=reviewer, reason="no")
    run.refresh_from_db()
    assert run.status == RunStatus.AWAITING_APPROVAL and _item(run).status == ReviewStatus.OPEN


def test_a_confirmed_plan_still_meets_the_approval_policy(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any, settings: Any
) -> None:
    settings.PLANNERWEB_APPROVAL_MODE = "always"
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    after = run_confirm(run_id=run.pk, user=operator)
    assert after.status == RunStatus.AWAITING_APPROVAL
    approval = ReviewItem.objects.get(run=run, kind=ReviewKind.PLAN_APPROVAL)
    assert approval.status == ReviewStatus.OPEN and approval.plan_id == run.current_plan_id


@pytest.mark.parametrize("mode", ["always", "sensitive"])
def test_a_plan_that_needs_no_confirmation_still_meets_the_approval_policy(
    monkeypatch: pytest.MonkeyPatch,
    operator: User,
    reviewer: User,
    planner_tools: Any,
    settings: Any,
    mode: str,
) -> None:
    settings.PLANNERWEB_APPROVAL_MODE = mode
    Tool.objects.filter(name="record").update(sensitive=True)
    run = _planned(monkeypatch, operator, good_plan(confidence=0.99), confirm="never")
    assert run.status == RunStatus.AWAITING_APPROVAL
    assert run.lease_owner == "" and run.lease_expires_at is None  # it holds no worker
    assert not ReviewItem.objects.filter(run=run, kind=ReviewKind.CONFIRMATION).exists()
    approval = ReviewItem.objects.get(run=run, kind=ReviewKind.PLAN_APPROVAL)
    assert approval.status == ReviewStatus.OPEN and approval.plan_id == run.current_plan_id
    assert run.steps.exclude(status="pending").count() == 0  # nothing ran
    review_approve(item_id=approval.pk, user=reviewer, checklist=all_ticks(approval))
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED


def test_a_plan_the_policy_lets_through_runs_at_once(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any, settings: Any
) -> None:
    settings.PLANNERWEB_APPROVAL_MODE = "sensitive"  # no step of this plan is sensitive
    run = _planned(monkeypatch, operator, good_plan(confidence=0.99), confirm="never")
    assert run.status == RunStatus.EXECUTING
    assert not ReviewItem.objects.filter(run=run).exists()


def test_cancelling_a_waiting_run_closes_its_confirmation(
    monkeypatch: pytest.MonkeyPatch, operator: User, planner_tools: Any
) -> None:
    run = _planned(monkeypatch, operator, good_plan(confidence=0.38))
    assert run_cancel(run_id=run.pk, user=operator).status == RunStatus.CANCELLED
    assert _item(run).status == ReviewStatus.EXPIRED

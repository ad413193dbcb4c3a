"""The one rule for escalation actions: each cause offers only what fits the run's state now."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reviews import actions
from reviews.actions import CAUSE_ACTIONS, allowed_actions
from reviews.models import ReviewItem, ReviewStatus
from runs.lifecycle.escalations import escalation_open
from runs.models import Step
from runs.statemachine import run_transition

pytestmark = pytest.mark.django_db


def test_a_stuck_step_offers_every_step_action(stuck: Callable[..., ReviewItem]) -> None:
    item = stuck("evaluator_fail")
    assert allowed_actions(item) == ["retry", "skip", "edit", "rollback", "abort"]


def test_after_the_rollback_ran_only_abort_is_left(stuck: Callable[..., ReviewItem]) -> None:
    item = stuck("evaluator_fail", read="rolled_back")
    assert allowed_actions(item) == ["abort"]
    item = stuck("budget_breached", ship="skipped", read="succeeded")
    Step.objects.filter(run=item.run, phase="rollback").update(status="succeeded")
    assert allowed_actions(item) == ["abort"]


def test_retry_and_skip_need_exactly_one_step_to_act_on(
    stuck: Callable[..., ReviewItem],
) -> None:
    item = stuck("partial_run", read="failed")
    ReviewItem.objects.filter(pk=item.pk).update(step=None)
    item.refresh_from_db()
    assert allowed_actions(item) == ["edit", "rollback", "abort"]


def test_a_run_still_executing_offers_only_abort(stuck: Callable[..., ReviewItem]) -> None:
    item = stuck("evaluator_fail", escalate=False)
    assert allowed_actions(item) == ["abort"]


def test_a_budget_breach_offers_raising_the_budget_never_a_retry(
    stuck: Callable[..., ReviewItem],
) -> None:
    item = stuck("budget_breached", ship="skipped")
    assert allowed_actions(item) == ["raise_budget", "edit", "rollback", "abort"]


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        ("no_playbook_match", ["write_plan", "abort"]),
        ("planner_not_configured", ["write_plan", "abort"]),
        ("planner_unavailable", ["retry", "write_plan", "abort"]),
        ("invalid_planner_output", ["retry", "write_plan", "abort"]),
        ("unknown_tool", ["retry", "write_plan", "abort"]),
    ],
)
def test_a_run_without_a_plan_offers_writing_one_and_a_retry_only_when_it_can_differ(
    operator: Any, cause: str, expected: list[str]
) -> None:
    from runs.lifecycle.planning import run_submit_task

    run = run_submit_task(title="t", submitted_by=operator, planner="playbook")
    run_transition(run_id=run.pk, to="planning")
    run_transition(run_id=run.pk, to="escalated", reason="no plan")
    item = escalation_open(run_id=run.pk, cause=cause, reason="no plan")
    assert allowed_actions(item) == expected


def test_a_decided_item_or_a_plan_approval_offers_nothing(
    stuck: Callable[..., ReviewItem], held: ReviewItem
) -> None:
    item = stuck("evaluator_fail")
    ReviewItem.objects.filter(pk=item.pk).update(status=ReviewStatus.APPROVED)
    item.refresh_from_db()
    assert allowed_actions(item) == [] and allowed_actions(held) == []


def test_a_new_cause_slots_in_as_one_table_row(
    stuck: Callable[..., ReviewItem], monkeypatch: pytest.MonkeyPatch
) -> None:
    item = stuck("evaluator_fail")
    monkeypatch.setitem(CAUSE_ACTIONS, "evaluator_fail", ("rollback", "abort"))
    assert allowed_actions(item) == ["rollback", "abort"]
    assert actions.action_labels(["abort"]) == [("abort", "Abort the run")]


def test_a_budget_breach_with_a_failed_step_offers_no_raise(
    stuck: Callable[..., ReviewItem],
) -> None:
    item = stuck("budget_breached", ship="failed")
    assert allowed_actions(item) == ["edit", "rollback", "abort"]

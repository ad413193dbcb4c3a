"""Escalation actions end to end: raise the budget and resume, write the plan by hand, refusals."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from reviews.models import AuditEntry, ReviewItem
from reviews.statemachine import ActionNotAllowed, DecisionInputInvalid
from runs.lifecycle.claim import run_execute
from runs.lifecycle.escalations import review_resolve_escalation
from runs.lifecycle.planning import run_submit_task
from runs.lifecycle.submit import run_submit_plan
from runs.lifecycle.worker import RunWorker
from runs.models import Plan, Run, RunStatus, Step, Task
from tests.reviews.conftest import all_ticks

pytestmark = pytest.mark.django_db(transaction=True)


def chain(key: str, n: int, *, rollback: bool = False) -> dict[str, Any]:
    steps = [
        {
            "id": f"s{i}",
            "action": "record",
            "params": {"key": key, "label": f"s{i}"},
            "depends_on": [f"s{i - 1}"] if i else [],
        }
        for i in range(n)
    ]
    doc: dict[str, Any] = {"steps": steps}
    if rollback:
        doc["rollback"] = [{"action": "record", "params": {"key": key, "label": "undo"}}]
    return doc


def over_budget(key: str, *, rollback: bool = False) -> Run:
    """Four steps under a two-step budget: escalated budget_breached (rolled back first if any)."""
    run = run_submit_plan(
        title="budgeted", document=chain(key, 4, rollback=rollback), submitted_by=None
    )
    Task.objects.filter(pk=run.task_id).update(budget_max_steps=2)
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.ESCALATED, run.stop_reason
    return run


def unmatched(operator: User) -> Run:
    """A playbook task no playbook matches: escalated no_playbook_match, no plan."""
    run = run_submit_task(title="paint the fence blue", submitted_by=operator, planner="playbook")
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED
    return run


def open_item(run: Run) -> ReviewItem:
    return ReviewItem.objects.get(run=run, kind="escalation", status="open")


def decide(run: Run, user: User, action: str, **kw: Any) -> ReviewItem:
    item = open_item(run)
    review_resolve_escalation(
        item_id=item.pk, user=user, action=action, checklist=all_ticks(item), **kw
    )
    return item


def work() -> None:
    RunWorker(worker_id="w-actions", batch=True, recovery_seconds=0).run()


def test_raising_the_budget_resumes_the_run_where_it_stopped_to_success(
    fast_settings: Any, toolset: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = over_budget(key)
    assert calls == ["s0", "s1"] and open_item(run).cause == "budget_breached"
    item = decide(run, reviewer, "raise_budget", budgets={"budget_max_steps": 10}, reason="ok")
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    assert calls == ["s0", "s1", "s2", "s3"]  # nothing before the stop ran twice
    assert Task.objects.get(pk=run.task_id).budget_max_steps == 10
    change = AuditEntry.objects.get(action="task_budgets.changed")
    assert change.before["max_steps"] == "2" and change.after["max_steps"] == "10"  # type: ignore[index]
    assert change.actor == reviewer
    decided = ReviewItem.objects.get(pk=item.pk)
    assert (decided.status, decided.decision) == ("approved", "raise_budget")


@pytest.mark.parametrize(
    ("budgets", "field"),
    [({"budget_max_steps": 2}, "budget_max_steps"), ({}, "budgets")],
)
def test_new_limits_that_leave_no_room_are_refused_and_nothing_is_written(
    fast_settings: Any,
    toolset: None,
    reviewer: User,
    key: str,
    budgets: dict[str, Any],
    field: str,
) -> None:
    run = over_budget(key)
    with pytest.raises(DecisionInputInvalid) as caught:
        decide(run, reviewer, "raise_budget", budgets=budgets)
    assert caught.value.field == field
    assert Task.objects.get(pk=run.task_id).budget_max_steps == 2
    assert Run.objects.get(pk=run.pk).status == RunStatus.ESCALATED
    assert open_item(run).status == "open"
    assert not AuditEntry.objects.filter(action="task_budgets.changed").exists()


def test_after_the_rollback_ran_retry_and_raise_budget_are_refused_with_the_allowed_list(
    fast_settings: Any, toolset: None, reviewer: User, key: str, calls: list[str]
) -> None:
    run = over_budget(key, rollback=True)
    assert calls == ["s0", "s1", "undo"]
    for action in ("retry", "skip", "edit", "raise_budget", "rollback"):
        with pytest.raises(ActionNotAllowed) as caught:
            decide(run, reviewer, action, budgets={"budget_max_steps": 10})
        assert caught.value.allowed == ["abort"]
    decide(run, reviewer, "abort", reason="already undone")
    assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_no_playbook_match_offers_no_retry_and_a_plan_written_by_hand_runs(
    fast_settings: Any, toolset: None, reviewer: User, operator: User, key: str, calls: list[str]
) -> None:
    run = unmatched(operator)
    assert open_item(run).cause == "no_playbook_match"
    with pytest.raises(ActionNotAllowed) as caught:
        decide(run, reviewer, "retry")
    assert caught.value.allowed == ["write_plan", "abort"]
    assert ReviewItem.objects.filter(run=run).count() == 1  # no new item, no loop
    item = decide(run, reviewer, "write_plan", document=chain(key, 2))
    work()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and calls == ["s0", "s1"]
    plan = Plan.objects.get(run=run)
    assert (plan.source, plan.created_by) == ("reviewer", reviewer)
    assert ReviewItem.objects.get(pk=item.pk).status == "edited"
    assert set(Step.objects.filter(plan=plan).values_list("status", flat=True)) == {"succeeded"}


def test_a_plan_written_by_hand_is_validated_first(
    fast_settings: Any, toolset: None, reviewer: User, operator: User
) -> None:
    from reviews.statemachine import PlanInvalid

    run = unmatched(operator)
    with pytest.raises(PlanInvalid):
        decide(run, reviewer, "write_plan", document={"steps": [{"id": "a", "action": "nope"}]})
    assert not Plan.objects.filter(run=run).exists() and open_item(run).status == "open"

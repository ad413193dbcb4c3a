"""Which escalation actions fit an item: the one rule the API, the review page and the decision use.

Two parts, so a new cause is one table row (and, for a new action, one entry in ``_FITS``):

1. ``CAUSE_ACTIONS``: what each cause may ever offer. A retry that would repeat a
   deterministic failure unchanged (no playbook matched, no API key) is not
   among them; writing the plan by hand is.
2. ``_FITS``: whether an action fits the run as it is now (escalated or not, a
   plan or none, already rolled back, one step to act on, ...).

``allowed_actions(item)`` applies both; anything else is refused before a write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from reviews.models import EscalationAction, EscalationCause, ReviewItem, ReviewKind
from runs.models import Run, RunStatus, Step, StepStatus

A = EscalationAction
C = EscalationCause
S = StepStatus

# Planning gave no plan: the reviewer writes one, or (when asking again can help) retries.
_PLANNING_RETRYABLE = (A.RETRY, A.WRITE_PLAN, A.ABORT)
_PLANNING_DETERMINISTIC = (A.WRITE_PLAN, A.ABORT)
# A step stopped the run: act on it, change the plan, undo, or stop.
_STEP_STUCK = (A.RETRY, A.SKIP, A.EDIT, A.ROLLBACK, A.ABORT)

CAUSE_ACTIONS: dict[str, tuple[str, ...]] = {
    C.UNKNOWN_TOOL: _PLANNING_RETRYABLE,
    C.INVALID_PLANNER_OUTPUT: _PLANNING_RETRYABLE,
    C.PLANNER_UNAVAILABLE: _PLANNING_RETRYABLE,
    C.NO_PLAYBOOK_MATCH: _PLANNING_DETERMINISTIC,
    C.PLANNER_NOT_CONFIGURED: _PLANNING_DETERMINISTIC,
    C.EVALUATOR_FAIL: _STEP_STUCK,
    C.PARTIAL_RUN: _STEP_STUCK,
    # Retrying would breach the same budget again: raise it, change the plan, undo or stop.
    C.BUDGET_BREACHED: (A.RAISE_BUDGET, A.EDIT, A.ROLLBACK, A.ABORT),
    # A rollback step failed: run it again, or record that a human undid it, or stop.
    C.ROLLBACK_INCOMPLETE: (A.RETRY, A.MARK_DONE, A.ABORT),
}
# A cause missing from the table (an item opened by an older version) offers this.
_FALLBACK = (A.EDIT, A.ABORT)


@dataclass(frozen=True)
class RunFacts:
    """What the rule needs to know about the run behind an item, read once."""

    cause: str
    escalated: bool
    has_plan: bool  # a current plan with main steps
    undone: bool  # its rollback ran (or began): nothing of it can resume
    target: Step | None  # the one step a retry or a skip acts on
    others_stuck: bool  # another main step failed or may have partly run too
    any_stuck: bool  # some main step failed or may have partly run
    rollback_failed: bool  # some rollback step failed (what an incomplete rollback acts on)


def run_facts(item: ReviewItem, run: Run | None = None) -> RunFacts:
    """The facts about ``item``'s run now (three small queries)."""
    run = run if run is not None else Run.objects.get(pk=item.run_id)
    steps = (
        list(Step.objects.filter(plan_id=run.current_plan_id).order_by("phase", "position"))
        if run.current_plan_id is not None
        else []
    )
    main = [s for s in steps if s.phase == Step.Phase.MAIN]
    undone = any(s.status == S.ROLLED_BACK for s in main) or any(
        s.status not in (S.PENDING, S.SKIPPED) for s in steps if s.phase == Step.Phase.ROLLBACK
    )
    stuck = [s for s in main if s.status in (S.FAILED, S.RUNNING)]
    target = next((s for s in main if s.pk == item.step_id), None)
    if target is None and len(stuck) == 1:
        target = stuck[0]
    if target is not None and target.status not in (S.FAILED, S.RUNNING, S.PENDING):
        target = None
    return RunFacts(
        cause=item.cause,
        escalated=run.status == RunStatus.ESCALATED,
        has_plan=run.current_plan_id is not None and bool(main),
        undone=undone,
        target=target,
        others_stuck=any(target is None or s.pk != target.pk for s in stuck),
        any_stuck=bool(stuck),
        rollback_failed=any(s.status == S.FAILED for s in steps if s.phase == Step.Phase.ROLLBACK),
    )


def _resumable(f: RunFacts) -> bool:
    return f.has_plan and not f.undone


def _retry(f: RunFacts) -> bool:
    if f.cause == C.ROLLBACK_INCOMPLETE:  # the failed rollback step runs again
        return f.rollback_failed
    if not f.has_plan:  # plans again: only for the causes that list it (not deterministic)
        return True
    return _step_action(f)


def _step_action(f: RunFacts) -> bool:
    return _resumable(f) and f.target is not None and not f.others_stuck


_FITS: dict[str, Callable[[RunFacts], bool]] = {
    A.RETRY: _retry,
    A.SKIP: _step_action,
    A.EDIT: _resumable,
    A.WRITE_PLAN: lambda f: not f.has_plan,
    # Resumes where the breach stopped: only the steps it skipped are left to run.
    A.RAISE_BUDGET: lambda f: _resumable(f) and not f.any_stuck,
    A.ROLLBACK: _resumable,
    A.MARK_DONE: lambda f: f.rollback_failed,
    A.ABORT: lambda f: True,
}


def actions_for(facts: RunFacts) -> list[str]:
    """The actions of ``facts.cause`` that fit the run's state, in the table's order."""
    listed = CAUSE_ACTIONS.get(facts.cause, _FALLBACK)
    if not facts.escalated:  # still running (or already ended): stopping it is all that is left
        return [a for a in listed if a == A.ABORT]
    return [a for a in listed if _FITS.get(a, lambda f: False)(facts)]


def allowed_actions(item: ReviewItem, run: Run | None = None) -> list[str]:
    """The actions a reviewer may take on ``item`` now; none once it is decided or not an escalation."""
    if item.kind != ReviewKind.ESCALATION or not item.is_open:
        return []
    return actions_for(run_facts(item, run))


def action_labels(actions: list[str]) -> list[tuple[str, str]]:
    """(value, label) pairs for a page's buttons."""
    labels = dict(EscalationAction.choices)
    return [(a, labels.get(a, a)) for a in actions]

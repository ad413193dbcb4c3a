"""Submitting work: a hand-written plan becomes a task, a run and its first plan version."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from reviews.decisions import review_hold_plan
from runs.events import PlanCreated, RunCreated
from runs.execution.budgets import budget_overrides, task_budgets_set
from runs.lifecycle.dispatch import enqueue_run
from runs.lifecycle.intake import max_parallel_check
from runs.lifecycle.retention import retain_days_check
from runs.models import Plan, Run, RunStatus, Step, Task, Tool, TranscriptEvent
from runs.permissions import username
from runs.plan_versions import plan_document_diff
from runs.planning.options import PlannerOptions, PlannerOptionsError, default_options
from runs.planning.schema import undo_key
from runs.planning.subplans import SUBPLAN
from runs.planning.validation import ValidatedPlan, validate_with_registry
from runs.redaction import Redactor
from runs.statemachine import (
    NewEvent,
    append_events,
    run_transition,
)
from runs.textdata import storable_copy, unstorable

SYSTEM = TranscriptEvent.Role.SYSTEM


@transaction.atomic
def _storable_document(document: Any) -> Any:
    if not isinstance(document, dict | list):
        return None
    return storable_copy(document) if unstorable(document) else document


def plan_create(
    *,
    run: Run,
    document: Any,
    source: str,
    created_by: User | None = None,
    parent: Plan | None = None,
    validated: ValidatedPlan | None = None,
) -> Plan:
    """Validate ``document`` and store it as the run's next plan version.

    An invalid plan is stored too, with every problem, so the operator sees what
    was wrong; it gets no steps and can never run. Everything stored is redacted
    (``runs.redaction``): a secret in the document never reaches a tool either.
    """
    if validated is None:
        validated = validate_with_registry(document)
    version = (run.plans.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    doc = validated.document
    red = Redactor(run.pk)
    # As submitted, with the tools' parameter defaults filled in: what will run.
    stored = validated.submitted if validated.submitted is not None else document
    kept = _redacted_document(red, _storable_document(stored))
    plan = Plan.objects.create(
        run=run,
        version=version,
        parent=parent,
        source=source,
        created_by=created_by,
        goal=red.text(doc.goal) if doc is not None else "",
        # An invalid plan may hold what the database refuses (its problems say so): escaped.
        document=kept,
        # Every version but the first says how it differs from the one it replaces.
        diff=plan_document_diff(parent.document, kept) if parent is not None else None,
        rollback=red.value(
            [r.model_dump(mode="json", exclude_none=True) for r in doc.rollback] if doc else []
        ),
        is_valid=validated.is_valid,
        errors=red.value(
            [{"path": p.path, "code": p.code, "message": p.message} for p in validated.problems]
        ),
    )
    steps: list[Step] = []
    if validated.is_valid and doc is not None:
        steps = _plan_steps(plan, validated, red)
        Step.objects.bulk_create(steps, batch_size=500)
        run.current_plan = plan
        run.save(update_fields=["current_plan"])
    append_events(
        run.pk,
        [
            NewEvent(
                TranscriptEvent.Role.PLANNER
                if source in (Plan.Source.PLANNER, Plan.Source.REPLANNER)
                else SYSTEM,
                PlanCreated(
                    plan_id=plan.pk,
                    version=version,
                    source=source,
                    valid=validated.is_valid,
                    steps=sum(1 for s in steps if s.phase == Step.Phase.MAIN),
                    errors=plan.errors,
                ),
            )
        ],
    )
    return plan


# What a plan document's steps name each other and their tools by: identifiers, kept as
# they are (``Step.key`` is the id) so a stored document validates again as it did.
_NAMES = frozenset({"id", "action", "depends_on"})


def _redacted_document(red: Redactor, document: Any) -> Any:
    """``document`` redacted for storage, but for its steps' ids, actions and dependencies."""

    def step(s: Any) -> Any:
        if not isinstance(s, dict):
            return red.value(s)
        return {k: v if k in _NAMES else red.value(v) for k, v in s.items()}

    if isinstance(document, list):
        return [step(s) for s in document]
    if not isinstance(document, dict):
        return None
    return {
        k: [step(s) for s in v]
        if k in ("steps", "rollback") and isinstance(v, list)
        else red.value(v)
        for k, v in document.items()
    }


def _plan_steps(plan: Plan, validated: ValidatedPlan, red: Redactor) -> list[Step]:
    """The step rows of a valid plan: main steps in topological order, then rollback steps."""
    run = plan.run
    doc = validated.document
    assert doc is not None
    steps: list[Step] = []
    tools = {t.name: t for t in Tool.objects.filter(name__in=_tool_names(validated))}
    by_id = {s.id: s for s in doc.steps}
    # Store steps in topological order, so position order is always a valid run order.
    for position, key in enumerate(validated.order):
        s = by_id[key]
        steps.append(
            Step(
                plan=plan,
                run=run,
                key=s.id,
                phase=Step.Phase.MAIN,
                position=position,
                # The built-in subplan action has no registry row (runs/planning/subplans.py).
                tool=None if s.action == SUBPLAN else tools[s.action],
                tool_name=s.action,
                params=red.value(s.params),
                depends_on=list(s.depends_on),
                description=red.text(s.description),
                confidence=s.confidence,
                locks=list(s.locks),
            )
        )
    # Rollback steps: each step's own undo (plan order), then the plan-level list.
    undos = [(s.id, s.undo) for s in doc.steps if s.undo is not None]
    for position, (key, undo) in enumerate(undos):
        steps.append(
            Step(
                plan=plan,
                run=run,
                key=undo_key(key),
                phase=Step.Phase.ROLLBACK,
                position=position,
                tool=tools[undo.action],
                tool_name=undo.action,
                params=red.value(undo.params),
                description=red.text(undo.description),
                undoes=key,
            )
        )
    for position, r in enumerate(doc.rollback):
        steps.append(
            Step(
                plan=plan,
                run=run,
                key=f"rollback-{position + 1}",
                phase=Step.Phase.ROLLBACK,
                position=len(undos) + position,
                tool=tools[r.action],
                tool_name=r.action,
                params=red.value(r.params),
                description=red.text(r.description),
                undoes=r.undoes or "",
                locks=list(r.locks),
            )
        )
    return steps


def _tool_names(validated: ValidatedPlan) -> set[str]:
    doc = validated.document
    assert doc is not None
    undos = {s.undo.action for s in doc.steps if s.undo is not None}
    return ({s.action for s in doc.steps} | {r.action for r in doc.rollback} | undos) - {SUBPLAN}


@transaction.atomic
def run_submit_plan(
    *,
    title: str,
    document: Any,
    submitted_by: User | None,
    description: str = "",
    max_parallel: int | None = None,
    validated: ValidatedPlan | None = None,
    budgets: dict[str, Any] | None = None,
    replanner: dict[str, Any] | None = None,
    retain_days: int | None = None,
) -> Run:
    """Create a task and a run for a hand-written plan; a valid plan is queued to execute.

    ``budgets``: per-task budget overrides (``runs.execution.budgets.BUDGET_FIELDS``).
    ``retain_days``: the task's own whole-run retention (``RetentionError`` out of bounds).
    ``replanner``: planner options (``planner``, ``model``, ``temperature``,
    ``max_tokens``, ``max_replans``) naming the planner that proposes a new version
    when a step fails; without them a failure rolls the plan back as written.
    Raises ``PlannerOptionsError`` (nothing written) for options that cannot work, and
    ``MaxParallelError`` for a ``max_parallel`` outside the range (None: the default).
    Pass ``validated`` when the caller already validated ``document`` (a form
    that showed problems inline) so the work is not done twice.

    Returns the run either way: an invalid plan's run ends ``failed`` at once,
    with the plan's problems stored on its plan version; a plan the approval
    policy holds leaves the run ``awaiting_approval`` with a review item open.
    """
    options = replanner_options(replanner or {})
    parallel = max_parallel_check(max_parallel)
    task = Task.objects.create(
        submitted_by=submitted_by,
        retain_days=retain_days_check(retain_days),
        **(_task_fields(options) if options is not None else {}),
    )
    task_budgets_set(task=task, overrides=budget_overrides(budgets or {}), actor=submitted_by)
    run = Run.objects.create(task=task, max_parallel=parallel)
    title, description = task_text_store(task=task, run=run, title=title, description=description)
    append_events(
        run.pk, [NewEvent(SYSTEM, RunCreated(task=title, submitted_by=username(submitted_by)))]
    )
    plan = plan_create(
        run=run, document=document, source=Plan.Source.OPERATOR, created_by=submitted_by
    )
    run_start_plan(run=run, plan=plan)
    run.refresh_from_db()
    return run


def task_text_store(*, task: Task, run: Run, title: str, description: str) -> tuple[str, str]:
    """Store a new task's text redacted by its first run's placeholders; returns what was stored.

    The run is made first (its salt numbers the placeholders), inside the same
    transaction, so the text as typed is never written.
    """
    red = Redactor(run.pk)
    task.title = red.text(title)[: Task._meta.get_field("title").max_length]
    task.description = red.text(description)
    task.save(update_fields=["title", "description"])
    return task.title, task.description


REPLANNER_FIELDS = ("planner", "model", "temperature", "max_tokens", "max_replans")


def replanner_options(given: dict[str, Any]) -> PlannerOptions | None:
    """The replanner of a hand-written plan, checked; None when no option names one."""
    given = {k: v for k, v in given.items() if v not in (None, "")}
    if not given:
        return None
    unknown = sorted(set(given) - set(REPLANNER_FIELDS))
    if unknown:
        raise PlannerOptionsError(
            f"a hand-written plan takes only {', '.join(REPLANNER_FIELDS)} as planner options",
            field=unknown[0],
        )
    if not given.get("planner") or given["planner"] == "manual":
        raise PlannerOptionsError(
            "name the planner that replans this plan after a failure (or give no planner "
            "options: a failure then rolls the plan back as written)",
            field="planner",
        )
    # Upfront: a replan proposes a whole new version; iterative planning has no plan to keep.
    return default_options(**given, mode="upfront")


def _task_fields(options: PlannerOptions) -> dict[str, Any]:
    return {
        "planner": options.planner,
        "model": options.model,
        "mode": options.mode,
        "temperature": options.temperature,
        "max_tokens": options.max_tokens,
        "max_replans": options.max_replans,
    }


def run_start_plan(*, run: Run, plan: Plan, invalid: str = "") -> None:
    """Hand a new run's first plan on: invalid, the run fails; else approval or the queue.

    ``invalid`` words the failure (default: the version and its problem count).
    """
    if not plan.is_valid:
        count = len(plan.errors)
        first = plan.errors[0]["message"] if plan.errors else "invalid plan"
        why = invalid or f"plan v{plan.version} is invalid ({count} problem{'s' * (count != 1)})"
        run_transition(
            run_id=run.pk,
            to=RunStatus.FAILED,
            reason=f"{why}: {first}",
            role=TranscriptEvent.Role.SUPERVISOR,
        )
        return

    # The approval policy may park the run for a reviewer instead (no worker held).
    if review_hold_plan(run=run, plan=plan) is None:
        enqueue_run(run.pk)

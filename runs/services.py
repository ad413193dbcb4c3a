"""Writes: submitting plans, creating plan versions, claiming, executing and cancelling runs.

Views, commands and workers call these keyword-only functions; they never
touch statuses themselves.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from runs.events import PlanCreated, RunCancelRequested, RunCreated
from runs.execution.budgets import budget_overrides, task_budgets_set
from runs.models import Plan, Run, RunStatus, Step, Task, Tool, TranscriptEvent
from runs.planning.validation import ValidatedPlan, validate_plan
from runs.statemachine import (
    RUN_ACTIVE,
    RUN_TERMINAL,
    NewEvent,
    TransitionError,
    append_events,
    lock_rows,
    run_transition,
    steps_cancel,
)
from runs.tools.registry import load_tool_specs

SYSTEM = TranscriptEvent.Role.SYSTEM


class RunError(Exception):
    """A request that cannot be honoured in the run's current state."""


def _username(user: AbstractBaseUser | None) -> str | None:
    return user.get_username() if user is not None else None


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@transaction.atomic
def plan_create(
    *,
    run: Run,
    document: Any,
    source: str,
    created_by: AbstractBaseUser | None = None,
    parent: Plan | None = None,
    validated: ValidatedPlan | None = None,
) -> Plan:
    """Validate ``document`` and store it as the run's next plan version.

    An invalid plan is stored too, with every problem, so the operator sees what
    was wrong; it gets no steps and can never run.
    """
    if validated is None:
        validated = validate_plan(
            document, tools=load_tool_specs(), max_steps=settings.PLANNERWEB_MAX_PLAN_STEPS
        )
    version = (run.plans.order_by("-version").values_list("version", flat=True).first() or 0) + 1
    doc = validated.document
    plan = Plan.objects.create(
        run=run,
        version=version,
        parent=parent,
        source=source,
        created_by=created_by,
        goal=doc.goal if doc is not None else "",
        document=document if isinstance(document, dict | list) else None,
        rollback=[r.model_dump(mode="json") for r in doc.rollback] if doc is not None else [],
        is_valid=validated.is_valid,
        errors=[{"path": p.path, "code": p.code, "message": p.message} for p in validated.problems],
    )
    steps: list[Step] = []
    if validated.is_valid and doc is not None:
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
                    tool=tools[s.action],
                    tool_name=s.action,
                    params=s.params,
                    depends_on=list(s.depends_on),
                    description=s.description,
                    confidence=s.confidence,
                )
            )
        for position, r in enumerate(doc.rollback):
            steps.append(
                Step(
                    plan=plan,
                    run=run,
                    key=f"rollback-{position + 1}",
                    phase=Step.Phase.ROLLBACK,
                    position=position,
                    tool=tools[r.action],
                    tool_name=r.action,
                    params=r.params,
                    description=r.description,
                )
            )
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


def _tool_names(validated: ValidatedPlan) -> set[str]:
    doc = validated.document
    assert doc is not None
    return {s.action for s in doc.steps} | {r.action for r in doc.rollback}


@transaction.atomic
def run_submit_plan(
    *,
    title: str,
    document: Any,
    submitted_by: AbstractBaseUser | None,
    description: str = "",
    max_parallel: int | None = None,
    validated: ValidatedPlan | None = None,
    budgets: dict[str, Any] | None = None,
) -> Run:
    """Create a task and a run for a hand-written plan; a valid plan is queued to execute.

    ``budgets``: per-task budget overrides (``runs.execution.budgets.BUDGET_FIELDS``).
    Pass ``validated`` when the caller already validated ``document`` (a form
    that showed problems inline) so the work is not done twice.

    Returns the run either way: an invalid plan's run ends ``failed`` at once,
    with the plan's problems stored on its plan version; a plan the approval
    policy holds leaves the run ``awaiting_approval`` with a review item open.
    """
    task = Task.objects.create(title=title, description=description, submitted_by=submitted_by)
    task_budgets_set(task=task, overrides=budget_overrides(budgets or {}), actor=submitted_by)
    run = Run.objects.create(
        task=task,
        max_parallel=max_parallel or settings.PLANNERWEB_DEFAULT_MAX_PARALLEL,
    )
    append_events(
        run.pk, [NewEvent(SYSTEM, RunCreated(task=title, submitted_by=_username(submitted_by)))]
    )
    plan = plan_create(
        run=run, document=document, source=Plan.Source.OPERATOR, created_by=submitted_by
    )
    run_start_plan(run=run, plan=plan)
    run.refresh_from_db()
    return run


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
    from reviews.services import review_hold_plan
    from runs.dispatch import enqueue_run

    # The approval policy may park the run for a reviewer instead (no worker held).
    if review_hold_plan(run=run, plan=plan) is None:
        enqueue_run(run.pk)


def lease_token(worker_id: str) -> str:
    """A fresh lease token: the worker's name (for people) and a nonce (for the fence)."""
    return f"{worker_id}/{secrets.token_hex(4)}"[-100:]


def run_claim(*, run_id: int, worker_id: str, lease_seconds: float | None = None) -> str | None:
    """Take a queued run (or one whose lease expired) for this worker.

    Returns the lease token the executor must write under (``Journal.fence``),
    or None when another worker has the run. A compare-and-swap on status and
    lease: of two workers racing, exactly one sees its update change a row. The
    token is new at every claim, so a worker that lost the run and took it back
    later is still told apart from its earlier self.
    """
    lease = lease_seconds or settings.PLANNERWEB_HEARTBEAT_SECONDS * 5
    token = lease_token(worker_id)
    now = timezone.now()
    until = now + timedelta(seconds=lease)
    with transaction.atomic():
        run = Run.objects.filter(pk=run_id).values("status", "lease_expires_at").first()
        if run is None:
            return None
        if run["status"] == RunStatus.QUEUED:
            won = Run.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
                lease_owner=token, lease_expires_at=until
            )
            if not won:
                return None
            run_transition(run_id=run_id, to=RunStatus.EXECUTING, reason=f"claimed by {worker_id}")
            return token
        if run["status"] in RUN_ACTIVE:
            expired = run["lease_expires_at"] is None or run["lease_expires_at"] < now
            if not expired:
                return None
            won = Run.objects.filter(
                pk=run_id, status=run["status"], lease_expires_at=run["lease_expires_at"]
            ).update(lease_owner=token, lease_expires_at=until)
            return token if won else None
        return None


def run_execute(*, run_id: int, worker_id: str | None = None) -> str:
    """Claim and execute a run to its next stop in this thread; returns the run's status.

    When another worker holds the run this backs off at once and returns its status.
    """
    from runs.execution.engine import RunExecutor
    from runs.execution.planning_hooks import PlanningHooks
    from runs.execution.supervision import Supervision
    from runs.planning.service import run_needs_planning, run_plan

    worker_id = worker_id or worker_identity()
    # A planner task's run is planned first (queued → planning → executing, or escalated).
    if (
        run_needs_planning(run_id)
        and run_plan(run_id=run_id, worker_id=worker_id) != RunStatus.EXECUTING
    ):
        return Run.objects.filter(pk=run_id).values_list("status", flat=True).get()

    token = run_claim(run_id=run_id, worker_id=worker_id)
    if token is None:
        return Run.objects.filter(pk=run_id).values_list("status", flat=True).get()
    return RunExecutor(
        run_id, supervision=Supervision(), planning=PlanningHooks(), lease_owner=token
    ).execute()


@transaction.atomic
def run_cancel(*, run_id: int, user: AbstractBaseUser | None) -> Run:
    """Cancel a run: at once when nothing executes it, else ask its executor to stop.

    An executing run's worker sees the request (at once in this process, within
    a heartbeat elsewhere), kills running steps and ends the run ``cancelled``.
    """
    run = lock_rows(Run.objects.filter(pk=run_id)).get()
    if run.status in RUN_TERMINAL:
        raise RunError(f"run {run_id} already ended ({run.status}); nothing to cancel")
    by = _username(user)
    reason = f"cancelled by {by}" if by else "cancelled"
    if run.status in RUN_ACTIVE:
        if run.cancel_requested_at is None:
            run.cancel_requested_at = timezone.now()
            run.cancel_requested_by = user  # type: ignore[assignment]
            run.save(update_fields=["cancel_requested_at", "cancel_requested_by"])
            append_events(
                run_id, [NewEvent(TranscriptEvent.Role.SUPERVISOR, RunCancelRequested(by=by))]
            )
            from runs.execution.engine import notify_cancel

            transaction.on_commit(lambda: notify_cancel(run_id, by))
        return run
    events = steps_cancel(run_id=run_id, reason=reason, role=TranscriptEvent.Role.SUPERVISOR)
    try:
        return run_transition(
            run_id=run_id,
            to=RunStatus.CANCELLED,
            reason=reason,
            role=TranscriptEvent.Role.SUPERVISOR,
            extra_events=events,
            cancel_requested_at=timezone.now(),
            cancel_requested_by=user,
        )
    except TransitionError as exc:
        raise RunError(str(exc)) from exc


# --------------------------------------------------------------------------- tools
class ToolRejected(ValueError):
    """A tool definition with problems; ``problems`` holds ``(field, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))


TOOL_FIELDS = (
    "name",
    "description",
    "kind",
    "config",
    "parameters_schema",
    "timeout_seconds",
    "max_retries",
    "sensitive",
    "idempotent",
    "enabled",
    "checks",
)


def _check_tool(tool: Tool) -> None:
    """Every problem with a tool's fields, the checks the admin form makes."""
    from runs.tools.registry import validate_parameters_schema, validate_tool_config

    problems: list[tuple[str, str]] = []
    if tool.kind not in Tool.Kind.values:
        problems.append(("kind", f"unknown kind {tool.kind!r} (known: {', '.join(Tool.Kind)})"))
    schema_problems = validate_parameters_schema(tool.parameters_schema)
    problems += [("parameters_schema", p) for p in schema_problems]
    if tool.kind in Tool.Kind.values:
        schema = None if schema_problems else tool.parameters_schema
        problems += [
            ("config", p)
            for p in validate_tool_config(tool.kind, tool.config, parameters_schema=schema)
        ]
    from runs.evaluation.checks import validate_checks

    problems += [("checks", p) for p in validate_checks(tool.checks)]
    if not tool.timeout_seconds > 0:
        problems.append(("timeout_seconds", "the timeout must be above 0 seconds"))
    clash = Tool.objects.filter(name=tool.name).exclude(pk=tool.pk).exists()
    if clash:
        problems.append(("name", f"a tool named {tool.name!r} already exists"))
    if problems:
        raise ToolRejected(problems)


def tool_audit(
    *,
    actor: AbstractBaseUser | None,
    tool: Tool,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str = "",
) -> None:
    """Audit a change to the registry the way the admin does (API and YAML import too)."""
    from reviews.services import config_audit

    config_audit(
        actor=actor,
        object_type="tool",
        object_id=str(tool.pk),
        before=before,
        after=after,
        reason=reason,
    )


def tool_snapshot(tool: Tool) -> dict[str, Any]:
    from reviews.audit import tool_snapshot as snapshot

    return snapshot(tool)


@transaction.atomic
def tool_create(*, actor: AbstractBaseUser | None = None, **fields: Any) -> Tool:
    """Add a tool to the registry after the same checks the admin makes; nothing saved on a problem."""
    tool = Tool(**{k: v for k, v in fields.items() if k in TOOL_FIELDS})
    _check_tool(tool)
    tool.save()
    tool_audit(actor=actor, tool=tool, before=None, after=tool_snapshot(tool))
    return tool


@transaction.atomic
def tool_update(
    *, name: str, changes: dict[str, Any], actor: AbstractBaseUser | None = None
) -> Tool:
    """Apply ``changes`` (a rename included) to the tool ``name``; nothing saved on a problem."""
    tool = lock_rows(Tool.objects.filter(name=name)).get()
    before = tool_snapshot(tool)
    changed = [k for k, v in changes.items() if k in TOOL_FIELDS and getattr(tool, k) != v]
    for key in changed:
        setattr(tool, key, changes[key])
    _check_tool(tool)
    if changed:
        tool.save(update_fields=[*changed, "updated_at"])
        tool_audit(actor=actor, tool=tool, before=before, after=tool_snapshot(tool))
    return tool


@transaction.atomic
def tool_delete(*, name: str, actor: AbstractBaseUser | None = None) -> None:
    """Remove a tool; steps that used it keep its name (``Step.tool_name``)."""
    tool = lock_rows(Tool.objects.filter(name=name)).first()
    if tool is None:
        raise Tool.DoesNotExist(f"No tool {name!r}.")
    before, tool_id = tool_snapshot(tool), tool.pk
    tool.delete()  # clears tool.pk: the audit entry names the id it had
    tool.pk = tool_id
    tool_audit(actor=actor, tool=tool, before=before, after=None)

"""What the executor knows of its run: status, budgets, lease and the current plan's steps.

Rebuilt from the database by ``load_run`` when the executor starts and after a
new plan version, so a run can stop in one process and continue in another.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils import timezone

from runs.execution.budgets import Budgets, Usage, budget_breach, budgets_for, run_usage
from runs.execution.ports import BUDGET_BREACHED, PlanningPort, SupervisionPort
from runs.execution.references import find_references
from runs.execution.steps import S, StepState
from runs.models import Run, Step
from runs.tools.base import ToolSpec


@dataclass(eq=False)
class RunState:
    """The run as loaded, shared by the executor's units and its supervision."""

    run_id: int
    # The lease (from run_claim) the executor writes under; see Journal.fence.
    fence: str | None
    status: str = ""
    iterative: bool = False
    budgets: Budgets = field(default_factory=Budgets)
    budgeted: bool = False  # read per step: a plain attribute, not Budgets.__bool__
    usage: Usage = field(default_factory=Usage)
    max_parallel: int = 1
    cancel_by: str | None = None
    cancel_requested: bool = False
    main: list[StepState] = field(default_factory=list)
    rollback: list[StepState] = field(default_factory=list)
    # Why the supervisor stops the run instead of replanning: (cause, step id).
    stop: tuple[str, int | None] | None = None
    # Tool name → confidence threshold, for the steps that may need a gate.
    gate_limits: dict[str, float] = field(default_factory=dict)

    def over_budget(self, starting: int) -> str | None:
        """The breach (naming the budget and figures) if starting ``starting`` more steps breaks one."""
        breach = budget_breach(self.budgets, self.usage, timezone.now(), starting=starting)
        if breach is not None:
            self.stop = (BUDGET_BREACHED, None)
        return breach

    def first_failure_reason(self) -> str:
        """The first failed main step's error, as a run's failure reason; empty if none failed."""
        for s in self.main:
            if s.status == S.FAILED:
                return f"step {s.key} failed: {s.error}"
        return ""


def load_run(run: RunState, *, planning: PlanningPort, supervision: SupervisionPort) -> None:
    """Fill ``run`` from the database: the run row, its current plan's steps and their tools."""
    row = Run.objects.select_related("current_plan", "task").get(pk=run.run_id)
    run.status = row.status
    run.iterative = planning.is_iterative(row.task)
    run.budgets = budgets_for(row.task)
    run.budgeted = bool(run.budgets)
    # Usage is read only when a budget applies: no query for runs without one.
    run.usage = run_usage(run.run_id, row.started_at) if run.budgeted else Usage()
    if run.fence is None:
        run.fence = row.lease_owner
    run.max_parallel = max(1, row.max_parallel)
    run.cancel_by = row.cancel_requested_by.get_username() if row.cancel_requested_by else None
    run.cancel_requested = row.cancel_requested_at is not None
    steps = (
        Step.objects.filter(plan_id=row.current_plan_id)
        .select_related("tool")
        .order_by("phase", "position")
    )
    specs: dict[int, ToolSpec] = {}
    run.main, run.rollback = [], []
    for s in steps:
        spec = None
        if s.tool is not None:
            spec = specs.get(s.tool_id)  # type: ignore[arg-type]
            if spec is None:
                spec = specs[s.tool_id] = ToolSpec.from_model(s.tool)  # type: ignore[index]
        state = StepState(
            id=s.pk,
            key=s.key,
            phase=s.phase,
            tool=spec,
            tool_name=s.tool_name,
            params=s.params,
            depends_on=tuple(s.depends_on or ()),
            status=s.status,
            attempts=s.attempts,
            result=s.result,
            error=s.error,
            started_at=s.started_at,
            finished_at=s.finished_at,
            has_refs=bool(find_references(s.params)),
            confidence=s.confidence,
        )
        (run.main if s.phase == Step.Phase.MAIN else run.rollback).append(state)
    supervision.load_gates(run)

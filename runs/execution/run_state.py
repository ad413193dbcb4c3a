"""What the executor knows of its run: status, budgets, lease and the current plan's steps.

Rebuilt from the database by ``load_run`` when the executor starts and after a
new plan version, so a run can stop in one process and continue in another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils import timezone

from reviews.models import EscalationCause
from runs.execution.budgets import Budgets, Usage, budget_breach
from runs.execution.steps import S, StepState


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
    # Hosted beside other runs: the most steps it may run at once now (its fair share
    # of the worker's, ``runs.lifecycle.host``); None: only ``max_parallel`` counts.
    share: Callable[[], int] | None = None
    cancel_by: str | None = None
    cancel_requested: bool = False
    # The cancel asks for a rollback ("cancel and roll back"), and the operator's why.
    cancel_rollback: bool = False
    cancel_reason: str = ""
    # The write-ahead intent the run was loaded with (``Run.starting``): main steps whose
    # tools may have been called by a worker that stopped before their rows were in.
    starting: frozenset[int] = frozenset()
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
            self.stop = (EscalationCause.BUDGET_BREACHED, None)
        return breach

    def cancel_text(self) -> str:
        """Who cancelled and why, for the run's stop reason."""
        text = f"cancelled by {self.cancel_by}" if self.cancel_by else "cancelled"
        return f"{text}: {self.cancel_reason}" if self.cancel_reason else text

    def first_failure_reason(self) -> str:
        """The first failed main step's error, as a run's failure reason; empty if none failed."""
        for s in self.main:
            if s.status == S.FAILED:
                return f"step {s.key} failed: {s.error}"
        return ""

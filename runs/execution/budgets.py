"""Supervisor budgets: per-run limits on steps, tokens, cost and wall time.

Defaults come from ``PLANNERWEB_BUDGET_*`` settings (0 = no limit), each
overridable per task (``Task.budget_*``, null = the default). The executor
reads usage once when it loads a run (and again after a replan or a rubric
call) and counts step starts in memory, so a run without budgets pays nothing
and a run with them pays no extra query per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

if TYPE_CHECKING:
    from runs.planning.accounting import LlmTotals
from reviews.audit import config_audit
from runs.planning.accounting import run_llm_totals
from runs.selectors import run_descendant_ids, run_steps_started


@dataclass(frozen=True)
class Budgets:
    max_steps: int | None = None
    max_tokens: int | None = None
    max_cost: Decimal | None = None
    max_wall_seconds: int | None = None

    def __bool__(self) -> bool:
        return any(
            v is not None
            for v in (self.max_steps, self.max_tokens, self.max_cost, self.max_wall_seconds)
        )


@dataclass
class Usage:
    steps: int = 0  # steps started so far, replanned versions included
    tokens: int = 0
    cost: Decimal | None = None
    started_at: datetime | None = None


def _pick(override: Any, default: Any) -> Any:
    value = override if override is not None else default
    return value if value else None  # 0 means "no limit"


def budgets_for(task: Any) -> Budgets:
    """The effective budgets of a task: its overrides, else the settings defaults."""
    cost = _pick(task.budget_max_cost, settings.PLANNERWEB_BUDGET_MAX_COST)
    return Budgets(
        max_steps=_pick(task.budget_max_steps, settings.PLANNERWEB_BUDGET_MAX_STEPS),
        max_tokens=_pick(task.budget_max_tokens, settings.PLANNERWEB_BUDGET_MAX_TOKENS),
        max_cost=Decimal(str(cost)) if cost is not None else None,
        max_wall_seconds=_pick(
            task.budget_max_wall_seconds, settings.PLANNERWEB_BUDGET_MAX_WALL_SECONDS
        ),
    )


def run_usage(
    run_id: int,
    started_at: datetime | None,
    *,
    totals: LlmTotals | None = None,
    children: list[int] | None = None,
) -> Usage:
    """Selector: what a run has used so far, its child runs' use included (subplans roll up).

    Three queries for a run without children (one fewer with the model-call ``totals``,
    one fewer with its ``children`` ids), two more per child run.
    """

    if totals is None:
        totals = run_llm_totals(run_id)
    usage = Usage(
        steps=run_steps_started(run_id),
        tokens=totals.tokens_in + totals.tokens_out,
        cost=totals.cost,
        started_at=started_at,
    )
    for child in run_descendant_ids(run_id, children=children):
        spent = run_llm_totals(child)
        usage.steps += run_steps_started(child)
        usage.tokens += spent.tokens_in + spent.tokens_out
        if spent.cost is not None:
            usage.cost = (usage.cost or Decimal(0)) + spent.cost
    return usage


def budgets_left(budgets: Budgets, usage: Usage, now: datetime, *, reserve: int = 0) -> Budgets:
    """What a child run may use: each limit less what the run used (``reserve`` steps kept back).

    A limit used up is 0 left, which the caller must treat as "nothing left" (0 would
    mean "no limit" in a task override).
    """
    wall = None
    if budgets.max_wall_seconds is not None:
        elapsed = (now - usage.started_at).total_seconds() if usage.started_at else 0.0
        wall = max(0, int(budgets.max_wall_seconds - elapsed))
    return Budgets(
        max_steps=None
        if budgets.max_steps is None
        else max(0, budgets.max_steps - usage.steps - reserve),
        max_tokens=None
        if budgets.max_tokens is None
        else max(0, budgets.max_tokens - usage.tokens),
        max_cost=None
        if budgets.max_cost is None
        else max(Decimal(0), budgets.max_cost - (usage.cost or Decimal(0))),
        max_wall_seconds=wall,
    )


def budget_breach(
    budgets: Budgets, usage: Usage, now: datetime, *, starting: int = 0
) -> str | None:
    """The stop reason naming the budget and the figures, or None while within every budget.

    ``starting``: steps about to start (counted against ``max_steps``).
    """
    if budgets.max_steps is not None and usage.steps + starting > budgets.max_steps:
        return f"budget max_steps exceeded: {usage.steps + starting} steps > {budgets.max_steps}"
    if budgets.max_tokens is not None and usage.tokens > budgets.max_tokens:
        return f"budget max_tokens exceeded: {usage.tokens} tokens > {budgets.max_tokens}"
    if budgets.max_cost is not None and usage.cost is not None and usage.cost > budgets.max_cost:
        return f"budget max_cost exceeded: ${usage.cost:.4f} > ${budgets.max_cost:.4f}"
    if budgets.max_wall_seconds is not None and usage.started_at is not None:
        elapsed = (now - usage.started_at).total_seconds()
        if elapsed > budgets.max_wall_seconds:
            return f"budget max_wall_seconds exceeded: {elapsed:.1f}s > {budgets.max_wall_seconds}s"
    return None


# The per-task overrides (nullable Task fields; empty = the PLANNERWEB_BUDGET_* default).
BUDGET_FIELDS = (
    "budget_max_steps",
    "budget_max_tokens",
    "budget_max_cost",
    "budget_max_wall_seconds",
)


def budget_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """The budget overrides given (``None`` and missing ones left out), for a task's fields."""
    return {name: values[name] for name in BUDGET_FIELDS if values.get(name) is not None}


def task_budgets_set(*, task: Any, overrides: dict[str, Any], actor: Any) -> None:
    """Store a new task's budget overrides and audit them (caller's transaction).

    A task's budgets are fixed at submission; the audit entry records who chose
    which limits, so "every change to budgets" has its history.
    """
    if not overrides:
        return

    for name, value in overrides.items():
        setattr(task, name, value)
    task.save(update_fields=list(overrides))
    config_audit(
        actor=actor,
        object_type="task_budgets",
        object_id=task.pk,
        before=None,
        after={name: str(value) for name, value in overrides.items()},
        reason="budgets chosen at submission",
    )


class BudgetRaiseError(ValueError):
    """New limits for an over-budget run that would not let it go on; ``field`` names the culprit."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def _budget_figures(budgets: Budgets) -> dict[str, str | None]:
    return {
        name: None if value is None else str(value)
        for name, value in (
            ("max_steps", budgets.max_steps),
            ("max_tokens", budgets.max_tokens),
            ("max_cost", budgets.max_cost),
            ("max_wall_seconds", budgets.max_wall_seconds),
        )
    }


def task_budgets_raise(
    *, task: Any, overrides: dict[str, Any], usage: Usage, actor: Any, reason: str
) -> Budgets:
    """Store a reviewer's new limits for a run that breached one, audited (caller's transaction).

    Refused (``BudgetRaiseError``, nothing saved) unless the new limits leave room
    for at least one more step at today's usage: a resume would stop again at once.
    """
    if not overrides:
        raise BudgetRaiseError("Give at least one new limit.", field="budgets")
    before = budgets_for(task)
    for name, value in overrides.items():
        setattr(task, name, value)
    after = budgets_for(task)
    breach = budget_breach(after, usage, timezone.now(), starting=1)
    if breach is not None:
        field = next((f for f in BUDGET_FIELDS if breach.startswith(f"budget {f[7:]} ")), "")
        raise BudgetRaiseError(
            f"The new limits leave no room to go on: {breach}.", field=field or "budgets"
        )
    task.save(update_fields=list(overrides))
    config_audit(
        actor=actor,
        object_type="task_budgets",
        object_id=task.pk,
        before=_budget_figures(before),
        after=_budget_figures(after),
        reason=reason or "budgets raised to resume the run",
    )
    return after

"""How long a plan will take and what it will cost, from history: shown before approval.

1. Each tool's step durations: the latest ``SAMPLES`` steps of that tool that
   succeeded (``finished_at - started_at``), before ``before`` when given (the run
   page asks "what was the forecast when this run started?").
2. Each step weighs its tool's median (and, separately, its p90); the plan's
   duration is the heaviest chain of ``depends_on`` (the critical path), since
   independent steps run in parallel. Summing p90s along the p90 critical path
   over-states the p90 a little (not every step is slow at once): a safe bound.
3. Tools with no history weigh nothing and are named, so a reviewer sees the gap.
4. Cost: model cost spent planning this run so far, plus the mean cost of model
   calls made after planning (replans, iterative steps) in past finished runs.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, DurationField, ExpressionWrapper, F, Sum

from runs.models import LlmCall, Plan, Run, Step, StepStatus

_MICRO = Decimal("0.000001")  # costs are stored to the millionth of a dollar
SAMPLES = 200  # per tool: recent history follows a tool that got faster or slower
_LATER = (LlmCall.Purpose.REPLAN, LlmCall.Purpose.STEP)


@dataclass(frozen=True)
class Durations:
    median: float
    p90: float
    samples: int


@dataclass(frozen=True)
class Forecast:
    median_seconds: float
    p90_seconds: float
    critical_path: list[str]  # the step keys along the median critical path
    without_history: list[str]  # tools no finished step has taught us about
    samples: int  # step durations the forecast rests on
    spent_cost: Decimal | None = None  # None: no priced model call
    expected_later_cost: Decimal | None = None
    tools: dict[str, Durations] = field(default_factory=dict)

    @property
    def expected_cost(self) -> Decimal | None:
        if self.spent_cost is None and self.expected_later_cost is None:
            return None
        total = (self.spent_cost or Decimal(0)) + (self.expected_later_cost or Decimal(0))
        return total.quantize(_MICRO)

    def as_dict(self) -> dict[str, Any]:
        cost = self.expected_cost
        return {
            "median_seconds": round(self.median_seconds, 3),
            "p90_seconds": round(self.p90_seconds, 3),
            "critical_path": self.critical_path,
            "without_history": self.without_history,
            "samples": self.samples,
            "expected_cost": str(cost) if cost is not None else None,
            "spent_cost": str(self.spent_cost) if self.spent_cost is not None else None,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; one value is its own quantile."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def critical_path(
    steps: Sequence[tuple[str, str, Sequence[str]]], weights: Mapping[str, float]
) -> tuple[float, list[str]]:
    """The heaviest chain through ``(key, tool, depends_on)`` steps, weighing each by its tool."""
    by_key = {key: (tool, list(deps)) for key, tool, deps in steps}
    memo: dict[str, tuple[float, list[str]]] = {}

    def finish(key: str, seen: frozenset[str]) -> tuple[float, list[str]]:
        if key in memo:
            return memo[key]
        tool, deps = by_key[key]
        before = [finish(d, seen | {key}) for d in deps if d in by_key and d not in seen]
        total, path = max(before, key=lambda b: (b[0], len(b[1])), default=(0.0, []))
        memo[key] = (total + weights.get(tool, 0.0), [*path, key])
        return memo[key]

    ends = [finish(key, frozenset()) for key in by_key]
    # On a tie the longer chain: a step with no history still belongs to the path.
    return max(ends, key=lambda e: (e[0], len(e[1])), default=(0.0, []))


def tool_durations(
    tools: Iterable[str], *, before: datetime | None = None, exclude_run: int | None = None
) -> dict[str, Durations]:
    """Median and p90 of each tool's recent succeeded step durations, in seconds (one query)."""
    wanted = sorted(set(tools))
    took = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    rows = Step.objects.filter(
        tool_name__in=wanted,
        status=StepStatus.SUCCEEDED,
        started_at__isnull=False,
        finished_at__isnull=False,
    )
    if before is not None:
        rows = rows.filter(finished_at__lt=before)
    if exclude_run is not None:
        rows = rows.exclude(run_id=exclude_run)
    seconds: dict[str, list[float]] = {}
    latest = rows.annotate(took=took).order_by("-finished_at").values_list("tool_name", "took")
    # Bounded read of the newest rows: a tool so rarely used that none of its steps is among
    # them counts as without history, rather than the page scanning all history.
    for tool, duration in latest[: SAMPLES * max(len(wanted), 1) * 5].iterator():
        kept = seconds.setdefault(tool, [])
        if duration is not None and len(kept) < SAMPLES:
            kept.append(duration.total_seconds())
    return {
        tool: Durations(statistics.median(s), percentile(s, 0.9), len(s))
        for tool, s in seconds.items()
        if s
    }


def _later_cost(before: datetime | None, exclude_run: int) -> Decimal | None:
    """The mean model cost after planning, over past finished runs with priced calls."""
    calls = LlmCall.objects.filter(purpose__in=_LATER, cost__isnull=False).exclude(
        run_id=exclude_run
    )
    runs = Run.objects.filter(finished_at__isnull=False).exclude(pk=exclude_run)
    if before is not None:
        calls = calls.filter(created_at__lt=before)
        runs = runs.filter(finished_at__lt=before)
    total = calls.aggregate(s=Sum("cost"))["s"]
    finished = runs.aggregate(n=Count("pk"))["n"]
    if total is None or not finished:
        return None
    return (Decimal(total) / finished).quantize(_MICRO)


def plan_forecast(plan: Plan, *, before: datetime | None = None) -> Forecast:
    """The forecast for ``plan``'s main steps (see the module docstring)."""
    steps = [
        (s.key, s.tool_name, list(s.depends_on or []))
        for s in Step.objects.filter(plan=plan, phase=Step.Phase.MAIN).order_by("position")
    ]
    tools = {tool for _, tool, _ in steps}
    history = tool_durations(tools, before=before, exclude_run=plan.run_id)
    median, path = critical_path(steps, {t: d.median for t, d in history.items()})
    p90, _ = critical_path(steps, {t: d.p90 for t, d in history.items()})
    spent = LlmCall.objects.filter(run_id=plan.run_id, cost__isnull=False).exclude(
        purpose__in=_LATER
    )
    if before is not None:
        spent = spent.filter(created_at__lt=before)
    spent_cost = spent.aggregate(s=Sum("cost"))["s"]
    return Forecast(
        median_seconds=median,
        p90_seconds=p90,
        critical_path=path,
        without_history=sorted(tools - history.keys()),
        samples=sum(d.samples for d in history.values()),
        spent_cost=Decimal(spent_cost).quantize(_MICRO) if spent_cost is not None else None,
        expected_later_cost=_later_cost(before, plan.run_id),
        tools=history,
    )

"""Reads for the evaluations page: each suite's trend as small plots, and planners compared."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Avg, Count, Q, Sum

from runs.models import SuiteRun, SuiteTaskResult

TREND_RUNS = 30
PLOT_W, PLOT_H = 160, 36


@dataclass(frozen=True)
class Plot:
    """A sparkline: SVG polyline points over the suite runs, oldest first."""

    label: str
    points: str
    last: str
    low: str
    high: str


@dataclass(frozen=True)
class SuiteTrend:
    name: str
    latest: SuiteRun
    runs: list[SuiteRun]
    plots: list[Plot]


@dataclass(frozen=True)
class PlannerRow:
    suite: str
    planner: str
    model: str
    tasks: int
    pass_rate: float
    cost_per_task: Decimal
    latency_ms: int


def _plot(label: str, values: list[float], fmt: str) -> Plot:
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = PLOT_W / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{PLOT_H - 2 - (v - low) / span * (PLOT_H - 4):.1f}"
        for i, v in enumerate(values)
    )
    return Plot(label, points, fmt.format(values[-1]), fmt.format(low), fmt.format(high))


def _plots(runs: list[SuiteRun]) -> list[Plot]:
    metrics = [r.metrics for r in runs]
    return [
        _plot("pass rate", [r.pass_rate * 100 for r in runs], "{:.0f}%"),
        _plot("steps per task", [float(m.get("steps_per_task") or 0) for m in metrics], "{:.1f}"),
        _plot(
            "tool success",
            [float(m.get("tool_success_rate") or 0) * 100 for m in metrics],
            "{:.0f}%",
        ),
        _plot(
            "escalations", [float(m.get("escalation_rate") or 0) * 100 for m in metrics], "{:.0f}%"
        ),
        _plot("cost ($)", [float(m.get("cost") or 0) for m in metrics], "{:.4f}"),
        _plot("latency (ms)", [float(m.get("latency_ms_mean") or 0) for m in metrics], "{:.0f}"),
    ]


def suite_trends() -> list[SuiteTrend]:
    """Per suite, its latest runs (oldest first) and their plots."""
    names = SuiteRun.objects.order_by("suite_name").values_list("suite_name", flat=True).distinct()
    trends = []
    for name in names:
        runs = list(
            SuiteRun.objects.filter(suite_name=name).order_by("-started_at", "-id")[:TREND_RUNS]
        )
        runs.reverse()
        trends.append(SuiteTrend(name, runs[-1], runs, _plots(runs)))
    return trends


def planner_comparison() -> list[PlannerRow]:
    """Per suite and planner (with the model asked for): pass rate, cost and latency per task."""
    rows = (
        SuiteTaskResult.objects.values("suite_run__suite_name", "planner", "suite_run__model")
        .annotate(
            tasks=Count("id"),
            passed=Count("id", filter=Q(passed=True)),
            cost=Sum("cost"),
            latency=Avg("latency_ms"),
        )
        .order_by("suite_run__suite_name", "planner", "suite_run__model")
    )
    return [
        PlannerRow(
            suite=row["suite_run__suite_name"],
            planner=row["planner"] or "-",
            model=row["suite_run__model"] or "default",
            tasks=row["tasks"],
            pass_rate=row["passed"] / row["tasks"],
            cost_per_task=((row["cost"] or Decimal(0)) / row["tasks"]).quantize(
                Decimal("0.000001")
            ),
            latency_ms=round(row["latency"] or 0),
        )
        for row in rows
    ]

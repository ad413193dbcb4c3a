"""The overview page: small server-rendered plots of how runs and their supervision go."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs.overview import Series, overview_series, reuse_totals
from runs.permissions import can_view_runs, role_required
from runs.pools import queues_overview

WIDTH, HEIGHT, PAD = 240, 60, 4


@dataclass(frozen=True)
class Plot:
    series: Series
    lines: list[str]  # SVG polyline points, one per unbroken stretch of days
    dots: list[tuple[float, float]]  # days standing alone
    top: float


def plot(series: Series) -> Plot:
    """The series drawn in a WIDTH × HEIGHT box, gaps where a day has no figure."""
    present = [v for v in series.values if v is not None]
    top = max(present, default=0.0) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(series.values) - 1, 1)
    lines: list[list[tuple[float, float]]] = [[]]
    for i, value in enumerate(series.values):
        if value is None:
            if lines[-1]:
                lines.append([])
            continue
        y = HEIGHT - PAD - (value / top) * (HEIGHT - 2 * PAD)
        lines[-1].append((round(PAD + i * step, 1), round(y, 1)))
    stretches = [points for points in lines if len(points) > 1]
    dots = [points[0] for points in lines if len(points) == 1]
    return Plot(
        series=series,
        lines=[" ".join(f"{x},{y}" for x, y in points) for points in stretches],
        dots=dots,
        top=top,
    )


@require_GET
@role_required(can_view_runs)
def overview(request: HttpRequest) -> HttpResponse:
    plots = [plot(series) for series in overview_series(days=30)]
    return render(
        request,
        "runs/overview.html",
        {
            "plots": plots,
            "width": WIDTH,
            "height": HEIGHT,
            "days": 30,
            "queues": queues_overview(),
            "reuse": reuse_totals(),
        },
    )

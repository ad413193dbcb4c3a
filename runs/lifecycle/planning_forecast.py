"""A run's forecast as a reviewer saw it before approval, and, once it ran, against the actual.

The forecast is recomputed from the history that existed when the run started
executing (steps that finished before then), so the figure after the run is the
one shown before it, without storing a copy; a run not started yet is forecast
from all history so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runs.models import Plan, Run
from runs.planning.forecast import Forecast, plan_forecast


@dataclass(frozen=True)
class RunForecast:
    plan_version: int
    forecast: Forecast
    actual_seconds: float | None  # the run's execution, once it finished

    def as_dict(self) -> dict[str, Any]:
        return {
            "plan_version": self.plan_version,
            **self.forecast.as_dict(),
            "actual_seconds": (
                round(self.actual_seconds, 3) if self.actual_seconds is not None else None
            ),
        }


def plan_forecast_for(plan: Plan | None) -> RunForecast | None:
    """The forecast of a plan waiting for approval (history up to now)."""
    if plan is None:
        return None
    return RunForecast(plan.version, plan_forecast(plan), None)


def run_forecast(run: Run) -> RunForecast | None:
    """The forecast of the run's current plan as of its start, and the actual duration."""
    plan = run.current_plan
    if plan is None:
        return None
    forecast = plan_forecast(plan, before=run.started_at)
    actual = None
    if run.started_at is not None and run.finished_at is not None:
        actual = (run.finished_at - run.started_at).total_seconds()
    return RunForecast(plan.version, forecast, actual)

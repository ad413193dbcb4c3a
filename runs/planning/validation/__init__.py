"""Plan validation: every problem in a submitted plan at once, plus a run order.

``checker`` walks the plan; ``graphs`` orders steps and finds cycles;
``messages`` words each problem for an operator or a planner's repair round.
"""

from __future__ import annotations

from runs.planning.validation.checker import (
    ValidatedPlan,
    plan_size_problem,
    validate_plan,
    validate_with_registry,
)
from runs.planning.validation.problems import PlanProblem

__all__ = [
    "PlanProblem",
    "ValidatedPlan",
    "plan_size_problem",
    "validate_plan",
    "validate_with_registry",
]

"""Lifecycle fixtures: the review-queue setup (tools, policies, held runs) shared with
tests/reviews, and the planner's tool registry shared with tests/runs/planning."""

from __future__ import annotations

from tests.reviews.conftest import global_policy, held, plan_doc, submit, tools
from tests.runs.planning.conftest import planner_settings, planner_tools

__all__ = [
    "global_policy",
    "held",
    "plan_doc",
    "planner_settings",
    "planner_tools",
    "submit",
    "tools",
]

"""Command fixtures: the planner's small tool registry, shared with tests/runs/planning."""

from __future__ import annotations

from tests.runs.planning.conftest import planner_tools

__all__ = ["planner_tools"]

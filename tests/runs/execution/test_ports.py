"""The engine reaches supervision and planning only through its ports, never by importing them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from runs.execution.planning_hooks import PlanningHooks
from runs.execution.ports import PlanningPort, SupervisionPort
from runs.execution.supervision import Supervision
from tests.runs.execution.units import RecordingSupervision

EXECUTION = Path(__file__).resolve().parents[3] / "runs" / "execution"
# The engine and its units; the ports' implementations (supervision.py, planning_hooks.py)
# may reach up, and so do resume.py and budgets.py, which serve reviewers' decisions.
ENGINE = (
    "engine.py",
    "ports.py",
    "run_state.py",
    "steps.py",
    "scheduler.py",
    "commit_policy.py",
    "writes.py",
    "runner.py",
    "main_phase.py",
    "rollback.py",
)
FORBIDDEN = (
    "reviews",
    "runs.planning.iterative",
    "runs.planning.replan",
    "runs.execution.supervision",
    "runs.execution.planning_hooks",
    "runs.services",
)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_production_implementations_satisfy_the_ports() -> None:
    assert isinstance(Supervision(), SupervisionPort)
    assert isinstance(PlanningHooks(), PlanningPort)
    assert isinstance(RecordingSupervision(), SupervisionPort)


@pytest.mark.parametrize(
    "path",
    [EXECUTION / name for name in ENGINE],
    ids=lambda p: p.name,
)
def test_engine_modules_do_not_import_what_sits_above_them(path: Path) -> None:
    bad = sorted(
        name
        for name in _imports(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    )
    assert bad == []

"""The production supervision and planning implement the engine's ports (the layers contract keeps the engine from importing them)."""

from __future__ import annotations

from runs.execution.ports import PlanningPort, SupervisionPort
from runs.lifecycle.planning_hooks import PlanningHooks
from runs.lifecycle.supervision import Supervision
from tests.runs.execution.units import RecordingSupervision


def test_the_production_implementations_satisfy_the_ports() -> None:
    assert isinstance(Supervision(), SupervisionPort)
    assert isinstance(PlanningHooks(), PlanningPort)
    assert isinstance(RecordingSupervision(), SupervisionPort)

"""What the engine asks of supervision and of the planner: small protocols, passed in.

The engine calls these and never imports their implementations (reviews,
replanning, iterative planning live above it); ``runs.lifecycle.supervision``
and ``runs.lifecycle.planning_hooks`` hold the production ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from runs.execution.run_state import RunState
    from runs.execution.steps import StepState
    from runs.models import Task
    from runs.tools.asking import Answer, Question

# A gated step's state: needs an item, waits on one, or the reviewer's decision.
GATE_NEEDED, GATE_OPEN, GATE_RUN, GATE_SKIP, GATE_ABORT = "needed", "open", "run", "skip", "abort"
# A subplan step whose child run is under way: it waits like a gate, for the child to stop.
GATE_CHILD = "child"


@runtime_checkable
class SupervisionPort(Protocol):
    """Escalations and confidence gates: where a human takes over from the engine."""

    def load_gates(self, run: RunState) -> None:
        """Set ``gate`` on pending steps that need a reviewer first (sync, ORM)."""
        ...

    async def escalate(
        self, run: RunState, cause: str, reason: str, *, step: StepState | None = None
    ) -> None:
        """End the run ``escalated`` with an escalation item; sets ``run.status``."""
        ...

    async def open_gates(self, run: RunState, gated: list[StepState]) -> None:
        """Open a review item for each step whose gate is ``GATE_NEEDED``."""
        ...

    async def gate_decisions(self, run: RunState, gated: list[StepState]) -> list[StepState]:
        """The gated steps a reviewer decided meanwhile (their ``gate`` set to the decision)."""
        ...

    async def park(self, run: RunState, gated: list[StepState]) -> list[StepState] | None:
        """Release the run to wait for reviewers; None when parked, else the steps decided meanwhile."""
        ...

    async def ask(self, run: RunState, step: StepState, question: Question) -> Answer:
        """A human's answer to a tool's question during the step's call (the call waits for it)."""
        ...


@runtime_checkable
class PlanningPort(Protocol):
    """The planner's hooks; ``replan`` and ``next_step`` run in a helper thread (they call a model)."""

    def is_iterative(self, task: Task) -> bool:
        """Whether the planner picks the task's steps one at a time."""
        ...

    def replan(self, *, run_id: int, failure: str, fence: str | None) -> tuple[bool, str]:
        """Try a new plan version after ``failure``: (adopted, the replanner's report)."""
        ...

    def next_step(self, *, run_id: int, fence: str | None) -> tuple[str, str]:
        """An iterative task's next step: (``continue`` | ``finish`` | ``fail`` | ``lost`` | ``ask``, reason).

        ``ask``: the planner asked a question; the run is already ``awaiting_input``.
        """
        ...

"""Supervision of a run: escalations and confidence gates, where a human takes over.

Implements ``runs.execution.ports.SupervisionPort`` for the engine. Anything that
reads or writes through the ORM runs in a helper thread (``runs.dbthreads``) so
the event loop keeps scheduling other steps.
"""

from __future__ import annotations

from typing import Any

from reviews.models import ReviewItem, ReviewKind
from reviews.policies import gate_threshold, step_needs_gate
from runs.dbthreads import in_db_thread
from runs.execution.journal import StaleStateError
from runs.execution.ports import (
    GATE_ABORT,
    GATE_CHILD,
    GATE_NEEDED,
    GATE_OPEN,
    GATE_RUN,
    GATE_SKIP,
)
from runs.execution.run_state import RunState
from runs.execution.steps import StepState
from runs.lifecycle.elicitation import elicitation_wait
from runs.lifecycle.escalations import (
    escalation_open,
    gate_resolution,
    gate_still_bound,
    step_gate_open,
)
from runs.lifecycle.subplan_links import subplan_gate, subplans_done
from runs.lifecycle.subplans import subplan_spawn
from runs.models import Run, RunStatus, StepStatus, TranscriptEvent
from runs.planning.subplans import SUBPLAN_SPEC
from runs.statemachine import LeaseLost, lock_rows, run_transition
from runs.tools.asking import Answer, Question

S = StepStatus
R = RunStatus
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR

__all__ = [
    "GATE_ABORT",
    "GATE_NEEDED",
    "GATE_OPEN",
    "GATE_RUN",
    "GATE_SKIP",
    "Supervision",
]


class Supervision:
    """Escalations (through ``runs.lifecycle.escalations``) and step gates for the engine."""

    def load_gates(self, run: RunState) -> None:
        """Mark pending low-confidence steps on sensitive tools as gated, with any decision made.

        Costs nothing unless a pending step is on a sensitive tool and has a confidence,
        or is a subplan step (which waits for its child run like a gate).
        """
        subplans = [s for s in run.main if s.status == S.PENDING and s.tool is SUBPLAN_SPEC]
        if subplans:
            for s in subplans:
                s.gate = subplan_gate(s.id)
        candidates = [
            s
            for s in run.main
            if s.status == S.PENDING
            and s.tool is not None
            and s.tool.sensitive
            and s.confidence is not None
        ]
        if not candidates:
            return

        limits = {name: gate_threshold(name) for name in {s.tool_name for s in candidates}}
        gated = [s for s in candidates if step_needs_gate(s, s.tool, threshold=limits[s.tool_name])]
        run.gate_limits = limits
        if not gated:
            return
        decided = _gate_actions(gated)
        for s in gated:
            s.gate = decided.get(s.id, GATE_NEEDED)

    async def escalate(
        self, run: RunState, cause: str, reason: str, *, step: StepState | None = None
    ) -> None:
        """Stop the run ``escalated`` and open its escalation item, in one transaction."""
        from django.db import transaction

        context = _report(run, reason)

        def work() -> None:
            with transaction.atomic():
                run_transition(
                    run_id=run.run_id,
                    to=R.ESCALATED,
                    reason=reason,
                    role=SUPERVISOR,
                    fence=run.fence,
                )
                escalation_open(
                    run_id=run.run_id,
                    cause=cause,
                    reason=reason,
                    context=context,
                    step_id=step.id if step is not None else None,
                )

        try:
            await in_db_thread(work)
        except LeaseLost as exc:
            raise StaleStateError(str(exc)) from exc
        run.status = R.ESCALATED

    async def open_gates(self, run: RunState, gated: list[StepState]) -> None:
        """Open a step_gate item (once) for each newly gated step; other steps keep running."""
        await in_db_thread(lambda: _open_items(run, gated))

    async def gate_decisions(self, run: RunState, gated: list[StepState]) -> list[StepState]:
        """The gated steps a reviewer decided meanwhile (one query, only while some wait)."""
        return _apply_decisions(gated, await in_db_thread(lambda: _gate_decisions(gated)))

    async def park(self, run: RunState, gated: list[StepState]) -> list[StepState] | None:
        """Only gated steps are left: open their items, then release the run to wait for a human.

        Returns the steps whose gate was decided meanwhile (the run goes on with them),
        or None when the run is parked. The decision service locks the run row too,
        so a decision either lands before the park (seen here) or after it (it
        re-queues the parked run): never lost between the two.
        """
        from django.db import transaction

        def work() -> dict[int, str] | None:
            _open_items(run, gated)
            with transaction.atomic():
                lock_rows(Run.objects.filter(pk=run.run_id)).values_list("pk").get()
                decided = _gate_decisions(gated)
                if decided:
                    return decided
                keys = ", ".join(s.key for s in gated)
                if all(s.tool is SUBPLAN_SPEC for s in gated):
                    to, reason = R.AWAITING_CHILD, f"waiting for the child runs of step(s) {keys}"
                else:
                    to, reason = (
                        R.AWAITING_APPROVAL,
                        f"waiting for a reviewer: gated step(s) {keys}",
                    )
                run_transition(
                    run_id=run.run_id,
                    to=to,
                    reason=reason,
                    role=SUPERVISOR,
                    fence=run.fence,
                    lease_owner="",
                    lease_expires_at=None,
                )
                run.status = to
                return None

        try:
            decided = await in_db_thread(work)
        except LeaseLost as exc:
            raise StaleStateError(str(exc)) from exc
        if decided is None:
            return None
        return _apply_decisions(gated, decided)

    async def ask(self, run: RunState, step: StepState, question: Question) -> Answer:
        """A review item for the tool's question; the call waits for its answer."""
        return await elicitation_wait(run, step, question)


def _report(run: RunState, reason: str) -> dict[str, Any]:
    """The context a reviewer gets: the failure report and the partial results."""
    budgets = run.budgets
    return {
        "failure": reason,
        "succeeded": [
            {"id": s.key, "action": s.tool_name, "result": s.result}
            for s in run.main
            if s.status == S.SUCCEEDED
        ],
        "failed": [
            {"id": s.key, "action": s.tool_name, "error": s.error, "result": s.result}
            for s in run.main
            if s.status == S.FAILED
        ],
        "not_run": [s.key for s in run.main if s.status in (S.PENDING, S.SKIPPED)],
        **_rollback_report(run),
        "budgets": {
            "max_steps": budgets.max_steps,
            "max_tokens": budgets.max_tokens,
            "max_cost": str(budgets.max_cost) if budgets.max_cost else None,
            "max_wall_seconds": budgets.max_wall_seconds,
        }
        if budgets
        else {},
    }


def _rollback_report(run: RunState) -> dict[str, Any]:
    """What a rollback undid and did not (only once rollback steps ran or were decided)."""
    if all(s.status == S.PENDING for s in run.rollback):
        return {}
    linked = {s.undoes for s in run.rollback if s.undoes}
    return {
        "rollback": [
            {
                "id": s.key,
                "action": s.tool_name,
                "undoes": s.undoes,
                "status": s.status,
                "error": s.error,
            }
            for s in run.rollback
        ],
        "undone": [s.key for s in run.main if s.status == S.ROLLED_BACK],
        "not_undone": [
            s.key
            for s in run.main
            if s.status == S.SUCCEEDED
            and (s.key in linked or not (s.tool is not None and s.tool.read_only))
        ],
    }


def _open_items(run: RunState, gated: list[StepState]) -> None:
    """Open the step_gate item of each gated step that has none yet (ORM, in a helper thread).

    A subplan step's "item" is its child run, started here.
    """

    for s in gated:
        if s.gate == GATE_NEEDED and s.tool is SUBPLAN_SPEC:
            subplan_spawn(run_id=run.run_id, step_id=s.id, fence=run.fence)
            s.gate = GATE_CHILD
        elif s.gate == GATE_NEEDED:
            step_gate_open(step_id=s.id, threshold=run.gate_limits[s.tool_name])
            s.gate = GATE_OPEN


def _gate_actions(gated: list[StepState]) -> dict[int, str]:
    """Step id → its latest gate item's state: open, the reviewer's action, or needed again.

    An approval binds to the params the reviewer saw: when the step would now run with
    other params, the approval does not carry over and a new gate is needed.
    """
    items = ReviewItem.objects.filter(
        kind=ReviewKind.STEP_GATE, step_id__in=[s.id for s in gated]
    ).select_related("step")
    latest = {item.step_id: item for item in items.order_by("id") if item.step_id is not None}
    actions = {}
    for step_id, item in latest.items():
        resolution = gate_resolution(item)
        if resolution is None:
            actions[step_id] = GATE_OPEN
        elif resolution.action == GATE_RUN and not gate_still_bound(item):
            actions[step_id] = GATE_NEEDED
        else:
            actions[step_id] = resolution.action
    return actions


def _gate_decisions(gated: list[StepState]) -> dict[int, str]:
    """Step id → what became of its gate, for the gated steps decided meanwhile.

    One query for the reviewed gates, one for the subplan steps (decided once their
    child run stopped).
    """
    reviewed = [s for s in gated if s.tool is not SUBPLAN_SPEC]
    decided = (
        {k: v for k, v in _gate_actions(reviewed).items() if v != GATE_OPEN} if reviewed else {}
    )
    children = [s.id for s in gated if s.tool is SUBPLAN_SPEC]
    if children:
        decided.update(dict.fromkeys(subplans_done(children), GATE_RUN))
    return decided


def _apply_decisions(gated: list[StepState], decided: dict[int, str]) -> list[StepState]:
    """Record the decisions on the steps; returns the steps that were decided."""
    done = []
    for s in gated:
        if s.id in decided:
            s.gate = decided[s.id]
            done.append(s)
    return done

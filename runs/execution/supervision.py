"""Supervision inside the executor: evaluator verdicts, budgets, escalations, confidence gates.

A mixin of ``runs.execution.engine.RunExecutor``: these methods read and write
the executor's state (steps, budgets, fence) but hold no scheduling logic.
Anything that reads or writes through the ORM runs in a helper thread
(``asyncio.to_thread``) so the event loop keeps scheduling other steps.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from runs.evaluation.checks import FAIL, Verdict, combine, has_rubric, run_check
from runs.execution.budgets import budget_breach
from runs.execution.journal import StaleStateError
from runs.models import Run, RunStatus, StepStatus, TranscriptEvent
from runs.tools.base import ToolSpec

if TYPE_CHECKING:
    from runs.execution.engine import StepState

S = StepStatus
R = RunStatus
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR
# Escalation causes (reviews.escalations.EscalationCause values; no import: no cycle).
BUDGET_BREACHED = "budget_breached"
EVALUATOR_FAIL = "evaluator_fail"
PARTIAL_RUN = "partial_run"
# A gated step's state: needs an item, waits on one, or the reviewer's decision.
GATE_NEEDED, GATE_OPEN, GATE_RUN, GATE_SKIP, GATE_ABORT = "needed", "open", "run", "skip", "abort"


class Supervision:
    """Evaluator, budgets, escalations and gates for ``RunExecutor`` (see the module docstring)."""

    # Provided by RunExecutor.
    run_id: int
    fence: str | None
    status: str
    main: list[StepState]

    def _load_gates(self) -> None:
        """Mark pending low-confidence steps on sensitive tools as gated, with any decision made.

        Costs nothing unless a pending step is on a sensitive tool and has a confidence.
        """
        candidates = [
            s
            for s in self.main
            if s.status == S.PENDING
            and s.tool is not None
            and s.tool.sensitive
            and s.confidence is not None
        ]
        if not candidates:
            return
        from reviews.models import ReviewItem, ReviewKind
        from reviews.policies import gate_threshold, step_needs_gate
        from runs.lifecycle.escalations import gate_resolution

        limits = {name: gate_threshold(name) for name in {s.tool_name for s in candidates}}
        gated = [s for s in candidates if step_needs_gate(s, s.tool, threshold=limits[s.tool_name])]
        self.gate_limits = limits
        if not gated:
            return
        items = ReviewItem.objects.filter(
            kind=ReviewKind.STEP_GATE, step_id__in=[s.id for s in gated]
        ).order_by("id")
        decided = {item.step_id: gate_resolution(item) for item in items}
        for s in gated:
            if s.id not in decided:
                s.gate = GATE_NEEDED
            else:
                resolution = decided[s.id]
                s.gate = GATE_OPEN if resolution is None else resolution.action

    async def _evaluate(self, state: StepState, spec: ToolSpec, result: Any) -> Verdict:
        """Every check of the tool; an LLM rubric (a model call) runs in a helper thread."""
        outcomes: list[tuple[dict[str, Any], str | None]] = []
        for check in spec.checks:
            if check.get("type") == "llm_rubric":
                continue
            try:
                outcomes.append((check, run_check(check, result)))
            except Exception as exc:  # a broken check fails the step, not the executor
                outcomes.append((check, f"{check.get('type')}: cannot run the check: {exc}"))
        verdict = combine(outcomes)
        if verdict.status == FAIL or not has_rubric(list(spec.checks)):
            return verdict
        rubrics = [c for c in spec.checks if c.get("type") == "llm_rubric"]

        def work() -> list[tuple[dict[str, Any], str | None]]:
            from django.db import connections

            from runs.evaluation.rubric import judge

            try:
                judged = [
                    (c, judge(c, result, run_id=self.run_id, step=state.key)) for c in rubrics
                ]
                if self.budgeted:  # the rubric's tokens count against the run's budgets
                    from runs.planning.accounting import run_llm_totals

                    totals = run_llm_totals(self.run_id)
                    self.usage.tokens = totals.tokens_in + totals.tokens_out
                    self.usage.cost = totals.cost
                return judged
            finally:
                connections.close_all()

        return combine(outcomes + await asyncio.to_thread(work))

    def _over_budget(self, starting: int) -> str | None:
        """The breach (naming the budget and figures) if starting ``starting`` more steps breaks one."""
        breach = budget_breach(self.budgets, self.usage, timezone.now(), starting=starting)
        if breach is not None:
            self.stop = (BUDGET_BREACHED, None)
        return breach

    def _report(self, reason: str) -> dict[str, Any]:
        """The context a reviewer gets: the failure report and the partial results."""
        return {
            "failure": reason,
            "succeeded": [
                {"id": s.key, "action": s.tool_name, "result": s.result}
                for s in self.main
                if s.status == S.SUCCEEDED
            ],
            "failed": [
                {"id": s.key, "action": s.tool_name, "error": s.error, "result": s.result}
                for s in self.main
                if s.status == S.FAILED
            ],
            "not_run": [s.key for s in self.main if s.status in (S.PENDING, S.SKIPPED)],
            "budgets": {
                "max_steps": self.budgets.max_steps,
                "max_tokens": self.budgets.max_tokens,
                "max_cost": str(self.budgets.max_cost) if self.budgets.max_cost else None,
                "max_wall_seconds": self.budgets.max_wall_seconds,
            }
            if self.budgets
            else {},
        }

    async def _escalate(self, cause: str, reason: str, *, step: StepState | None = None) -> None:
        """Stop the run ``escalated`` and open its escalation item, in one transaction."""
        from django.db import connections, transaction

        from runs.lifecycle.escalations import escalation_open
        from runs.statemachine import LeaseLost, run_transition

        context = self._report(reason)

        def work() -> None:
            try:
                with transaction.atomic():
                    run_transition(
                        run_id=self.run_id,
                        to=R.ESCALATED,
                        reason=reason,
                        role=SUPERVISOR,
                        fence=self.fence,
                    )
                    escalation_open(
                        run_id=self.run_id,
                        cause=cause,
                        reason=reason,
                        context=context,
                        step_id=step.id if step is not None else None,
                    )
            finally:
                connections.close_all()

        try:
            await asyncio.to_thread(work)
        except LeaseLost as exc:
            raise StaleStateError(str(exc)) from exc
        self.status = R.ESCALATED

    async def _open_gates(self, gated: list[StepState]) -> None:
        """Open a step_gate item (once) for each newly gated step; other steps keep running."""
        from django.db import connections

        from runs.lifecycle.escalations import step_gate_open

        def work() -> None:
            try:
                for s in gated:
                    if s.gate == GATE_NEEDED:
                        step_gate_open(step_id=s.id, threshold=self.gate_limits[s.tool_name])
                        s.gate = GATE_OPEN
            finally:
                connections.close_all()

        await asyncio.to_thread(work)

    async def _gate_decisions(self, gated: list[StepState]) -> list[StepState]:
        """The gated steps a reviewer decided meanwhile (one query, only while some wait)."""
        from django.db import connections

        def work() -> dict[int, str]:
            try:
                return _gate_decisions(gated)
            finally:
                connections.close_all()

        return _apply_decisions(gated, await asyncio.to_thread(work))

    async def _park(self, gated: list[StepState]) -> list[StepState] | None:
        """Only gated steps are left: open their items, then release the run to wait for a human.

        Returns the steps whose gate was decided meanwhile (the run goes on with them),
        or None when the run is parked. The decision service locks the run row too,
        so a decision either lands before the park (seen here) or after it (it
        re-queues the parked run): never lost between the two.
        """
        from django.db import connections, transaction

        from runs.lifecycle.escalations import step_gate_open
        from runs.statemachine import LeaseLost, lock_rows, run_transition

        def work() -> dict[int, str] | None:
            try:
                for s in gated:
                    if s.gate == GATE_NEEDED:
                        step_gate_open(step_id=s.id, threshold=self.gate_limits[s.tool_name])
                        s.gate = GATE_OPEN
                with transaction.atomic():
                    lock_rows(Run.objects.filter(pk=self.run_id)).values_list("pk").get()
                    decided = _gate_decisions(gated)
                    if decided:
                        return decided
                    keys = ", ".join(s.key for s in gated)
                    run_transition(
                        run_id=self.run_id,
                        to=R.AWAITING_APPROVAL,
                        reason=f"waiting for a reviewer: gated step(s) {keys}",
                        role=SUPERVISOR,
                        fence=self.fence,
                        lease_owner="",
                        lease_expires_at=None,
                    )
                    return None
            finally:
                connections.close_all()

        try:
            decided = await asyncio.to_thread(work)
        except LeaseLost as exc:
            raise StaleStateError(str(exc)) from exc
        if decided is None:
            self.status = R.AWAITING_APPROVAL
            return None
        return _apply_decisions(gated, decided)


def _gate_decisions(gated: list[StepState]) -> dict[int, str]:
    """Step id → the reviewer's action, for the gated steps already decided (one query)."""
    from reviews.models import ReviewItem, ReviewKind
    from runs.lifecycle.escalations import gate_resolution

    items = ReviewItem.objects.filter(
        kind=ReviewKind.STEP_GATE, step_id__in=[s.id for s in gated]
    ).order_by("id")
    decided = {}
    for item in items:
        resolution = gate_resolution(item)
        if resolution is not None:
            decided[item.step_id] = resolution.action
    return decided


def _apply_decisions(gated: list[StepState], decided: dict[int, str]) -> list[StepState]:
    """Record the decisions on the steps; returns the steps that were decided."""
    done = []
    for s in gated:
        if s.id in decided:
            s.gate = decided[s.id]
            done.append(s)
    return done

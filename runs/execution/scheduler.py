"""Which main steps are ready, waiting on dependencies, gated, in flight or done.

Event-driven, not layered: a step becomes ready the moment its own
dependencies have succeeded. Plan positions are a topological order, so one
pass in position order sees every dependency before the steps that need it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from runs.execution.journal import Batch
from runs.execution.steps import Outcome, S, StepState, transition
from runs.graph import dependents_of
from runs.tools.base import ToolSpec


def requeue_reason(tool: ToolSpec) -> str:
    """Why a step its stopped worker left running may be called again."""
    if tool.idempotent:
        return "re-queued after a worker stopped"
    return "re-queued after a worker stopped: its tool honours the step's idempotency key"


class Scheduler:
    """Dependency bookkeeping over one plan version's main steps."""

    __slots__ = ("by_key", "dependents", "gated", "ready", "results", "running", "steps", "waiting")

    def __init__(self, steps: list[StepState], running: dict[str, asyncio.Task[Any]]) -> None:
        self.steps = steps
        self.by_key = {s.key: s for s in steps}
        # The results of the steps that succeeded, by key (what references resolve against).
        self.results: dict[str, Any] = {}
        self.dependents = dependents_of({s.key: s.depends_on for s in steps})
        # Pending step → how many of its dependencies have not succeeded yet.
        self.waiting: dict[str, int] = {}
        self.ready: deque[str] = deque()
        # Steps waiting on a reviewer at their gate; independent steps go on.
        self.gated: dict[str, StepState] = {}
        # Started and not yet recorded as finished, by key (shared with the executor).
        self.running = running

    def recover(self, batch: Batch) -> tuple[StepState | None, str | None]:
        """Take in the loaded statuses: (a step that may have partly run, the first failure).

        A step left ``running`` by a worker that died is re-queued when its tool
        is idempotent or honours the step's idempotency key (the call again carries
        the same key) and no inner call of it is in doubt; otherwise it is returned,
        and the run must escalate.
        """
        failure: str | None = None
        for s in self.steps:
            if s.status == S.SUCCEEDED:
                self.results[s.key] = s.result
            elif s.status == S.RUNNING:
                if s.tool is not None and s.tool.queue:  # its pool row says what happened
                    s.adopt_remote = True
                    transition(batch, s, S.PENDING, reason="re-queued: its pool step is taken up")
                    continue
                if s.tool is None or not s.tool.repeatable or s.in_doubt:
                    return s, failure
                transition(batch, s, S.PENDING, reason=requeue_reason(s.tool))
            elif s.status in (S.FAILED, S.CANCELLED) and failure is None:
                failure = f"step {s.key} {s.status}: {s.error}".rstrip(": ")
        return None, failure

    def queue(self, batch: Batch) -> None:
        """Count each pending step's open dependencies; skip those that need a skipped step."""
        # Skipped by a reviewer (or a gate): what needs them is skipped too.
        skipped = {s.key for s in self.steps if s.status == S.SKIPPED}
        results = self.results
        for s in self.steps:
            if s.status != S.PENDING:
                continue
            blocked = [d for d in s.depends_on if d in skipped] if skipped else None
            if blocked:
                reason = f"needs {', '.join(blocked)}, which was skipped"
                transition(batch, s, S.SKIPPED, reason=reason)
                skipped.add(s.key)
                continue
            count = 0
            for d in s.depends_on:
                if d not in results:
                    count += 1
            self.waiting[s.key] = count
        self.ready.extend(k for k, n in self.waiting.items() if n == 0)

    def pop_ready(self) -> StepState:
        """The next ready step, first come first served."""
        return self.by_key[self.ready.popleft()]

    def idle(self, starting: bool) -> bool:
        """Whether nothing is starting, running or waiting at a gate."""
        return not (starting or self.running or self.gated)

    def gate(self, state: StepState) -> None:
        """Hold ``state`` at its gate until a reviewer decides."""
        self.gated[state.key] = state

    def ungate(self, decided: list[StepState]) -> None:
        """Make the steps whose gate a reviewer decided ready again."""
        for state in decided:
            del self.gated[state.key]
            self.ready.append(state.key)

    def finished(self, state: StepState, outcome: Outcome) -> None:
        """A step's call ended: when it succeeded, the steps waiting on it may become ready."""
        del self.running[state.key]
        if outcome.ok:
            self.results[state.key] = outcome.result
            waiting, ready = self.waiting, self.ready
            for d in self.dependents[state.key]:
                waiting[d] -= 1
                if waiting[d] == 0:
                    ready.append(d)

    def skip_unstarted(self, batch: Batch, failure: str) -> None:
        """Skip every step that did not start, saying whether it needed a failed step."""
        bad = {s.key for s in self.steps if s.status in (S.FAILED, S.SKIPPED, S.CANCELLED)}
        for s in self.steps:
            if s.status != S.PENDING:
                continue
            blocked = [d for d in s.depends_on if d in bad]
            if blocked:
                reason = f"needs {', '.join(blocked)}, which did not succeed"
            else:
                reason = f"not started: the run stopped ({failure})"
            transition(batch, s, S.SKIPPED, reason=reason)
            bad.add(s.key)

    def skip_unreachable(self, batch: Batch) -> None:
        """Skip the steps still pending when the run succeeds: they sit behind a skipped gate."""
        for s in self.steps:
            if s.status == S.PENDING:
                transition(batch, s, S.SKIPPED, reason="needs a step that was skipped")

"""In-memory stand-ins for the engine's units' tests: steps, a journal that keeps batches, a supervisor."""

from __future__ import annotations

from typing import Any

from runs.execution.journal import Batch
from runs.execution.run_state import RunState
from runs.execution.steps import StepState
from runs.execution.writes import Committer
from runs.tools.asking import Answer, Question
from runs.tools.base import ToolSpec


def tool(name: str = "t", **fields: Any) -> ToolSpec:
    """A tool snapshot; idempotent unless told otherwise."""
    fields.setdefault("idempotent", True)
    return ToolSpec(name=name, kind="python", **fields)


def step(
    key: str,
    *deps: str,
    status: str = "pending",
    spec: ToolSpec | None = None,
    phase: str = "main",
    params: Any = None,
    has_refs: bool = False,
    attempts: int = 0,
) -> StepState:
    """A step of an in-memory plan; ids follow from the key so tests can name them."""
    return StepState(
        id=abs(hash(key)) % 100_000 + 1,
        key=key,
        phase=phase,
        tool=spec if spec is not None else tool(),
        tool_name=(spec or tool()).name,
        params=params if params is not None else {},
        depends_on=deps,
        status=status,
        attempts=attempts,
        result=None,
        error="",
        started_at=None,
        finished_at=None,
        has_refs=has_refs,
    )


class KeptJournal:
    """Keeps each committed batch instead of writing it; ``fail`` makes the next commit raise."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.fail: BaseException | None = None
        self.holds = False  # True: as PostgreSQL's journal, a batch may be committed held

    def commit(self, batch: Batch) -> list[int]:
        if self.fail is not None:
            raise self.fail
        self.batches.append(batch)
        return list(range(len(batch.events)))

    async def commit_async(self, batch: Batch) -> list[int]:
        return self.commit(batch)

    async def call(self, work: Any, *args: Any) -> Any:
        return work(*args)

    def rows(self) -> list[tuple[str, str, str]]:
        """Every committed step row as (step id as key-free text, from, to), in order."""
        return [(str(w.step_id), w.expect, w.status) for b in self.batches for w in b.steps]


def committer(run: RunState | None = None) -> tuple[Committer, KeptJournal]:
    """A real ``Committer`` over a ``KeptJournal``."""
    journal = KeptJournal()
    return Committer(run or RunState(1, "lease"), journal), journal  # type: ignore[arg-type]


class RecordingSupervision:
    """Escalates in memory and records each call; gates are never needed."""

    def __init__(self) -> None:
        self.escalations: list[tuple[str, str, str | None]] = []

    def load_gates(self, run: RunState) -> None:
        return None

    async def escalate(
        self, run: RunState, cause: str, reason: str, *, step: StepState | None = None
    ) -> None:
        self.escalations.append((cause, reason, step.key if step is not None else None))
        run.status = "escalated"

    async def open_gates(self, run: RunState, gated: list[StepState]) -> None:
        return None

    async def gate_decisions(self, run: RunState, gated: list[StepState]) -> list[StepState]:
        return []

    async def park(self, run: RunState, gated: list[StepState]) -> list[StepState] | None:
        return None

    async def ask(self, run: RunState, step: StepState, question: Question) -> Answer:
        return Answer("cancel")

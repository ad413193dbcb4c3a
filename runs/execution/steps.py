"""A step as the executor holds it in memory, and its transitions written into a journal batch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from runs.evaluation.checks import Verdict
from runs.events import StepVerdict, step_status_json
from runs.execution.journal import Batch, StepWrite
from runs.models import StepStatus, TranscriptEvent
from runs.statemachine import check_step_transition
from runs.tools.base import ToolSpec

S = StepStatus

# Plain str: an enum member is formatted into every event frame by a Python
# ``__format__`` and bound into every event row by sqlite3's slower adapter path.
EXECUTOR = TranscriptEvent.Role.EXECUTOR.value
SUPERVISOR = TranscriptEvent.Role.SUPERVISOR.value
EVALUATOR = TranscriptEvent.Role.EVALUATOR.value

# Status → its plain ``str`` value, for the same reason: rows and events get plain text.
# (``StepStatus`` hashes and compares as its value, so plain keys find members too.)
_PLAIN: dict[str, str] = {member: member.value for member in StepStatus}
# The values ``change`` compares against, as module globals: reading a member off the
# enum class costs ~40 ns more than a global, and ``change`` runs twice a step.
_PENDING, _RUNNING, _SUCCEEDED, _FAILED = (
    S.PENDING.value,
    S.RUNNING.value,
    S.SUCCEEDED.value,
    S.FAILED.value,
)
# The transitions whose event carries the step's result, and those that end a step.
_SHOWS_RESULT = frozenset({S.SUCCEEDED.value, S.FAILED.value})
_FINISHED = frozenset({S.SUCCEEDED.value, S.FAILED.value, S.SKIPPED.value, S.CANCELLED.value})
# json.dumps with a non-default option builds an encoder per call: keep one.
to_json = json.JSONEncoder(allow_nan=False).encode


@dataclass(slots=True)
class StepState:
    """One step of the current plan, as loaded and then changed by the executor."""

    id: int
    key: str
    phase: str
    tool: ToolSpec | None
    tool_name: str
    params: Any
    depends_on: tuple[str, ...]
    status: str
    attempts: int
    result: Any
    error: str
    started_at: Any
    finished_at: Any
    has_refs: bool
    confidence: float | None = None
    gate: str | None = None  # None: not gated; else one of the ports.GATE_* values
    undoes: str = ""  # a rollback step: the main step it undoes ("" when unlinked)
    # Resource lock templates (the tool's, then the step's own); see runs/execution/locks.py.
    locks: tuple[str, ...] = ()
    # Handed to every call of the step's tool (``Step.idempotency_key``); None: none stored.
    idempotency_key: str | None = None
    # Taken over while a pool worker had it: its pool row (in flight or finished) is its call.
    adopt_remote: bool = False
    # Left running by a stopped worker with an inner call (an agent's) that may have
    # taken effect and may not be made again: why (runs.llmtools.in_doubt), else "".
    in_doubt: str = ""


@dataclass(slots=True)
class Outcome:
    """What one step's tool call came to, after retries and the evaluator."""

    ok: bool
    result: Any = None
    error: str = ""
    verdict: Verdict | None = None
    result_json: str | None = None  # ``result`` as JSON, from the check that it serialises


def change(
    batch: Batch,
    state: StepState,
    to: str,
    *,
    result: Any = None,
    error: str = "",
    attempts: int | None = None,
    verdict: Verdict | None = None,
    result_json: str | None = None,
) -> StepWrite:
    """Make a step transition in memory; returns its row, which ``record`` writes."""
    to = _PLAIN[to]
    now = batch.stamp()
    previous = state.status
    if to == _RUNNING and previous == _PENDING:
        state.attempts += 1
        state.started_at = now
    if attempts is not None:
        state.attempts = attempts
    if to in _FINISHED:
        state.finished_at = now
    if to == _SUCCEEDED or result is not None:
        state.result = result
    if error or to in (_FAILED, _SUCCEEDED):  # a success clears an earlier attempt's error
        state.error = error
    if to == _PENDING:
        state.started_at = None
    state.status = to
    # Positional, in StepWrite's field order: keywords cost a dict and ~0.5 µs, twice a step.
    return StepWrite(
        state.id,  # step_id
        previous,  # expect
        to,  # status
        state.attempts,
        state.result,
        state.error,
        state.started_at,
        state.finished_at,
        (verdict.status, verdict.reason) if verdict is not None else None,  # verdict
        result_json if result is not None else None,  # result_json
    )


def record(
    batch: Batch,
    state: StepState,
    write: StepWrite,
    *,
    result_json: str = "null",
    error: str = "",
    reason: str = "",
) -> None:
    """Put a row made by ``change`` into ``batch``, with its ``step.status`` event."""
    if reason:  # text the journal's redaction must read in the encoded event
        batch.scan_events = True
    batch.add_step(
        write,
        EXECUTOR,
        step_status_json(
            step_id=state.id,
            step=state.key,
            phase=state.phase,
            from_status=write.expect,
            to_status=write.status,
            attempt=write.attempts,
            result_json=result_json,
            error=error,
            reason=reason,
        ),
    )


def transition(
    batch: Batch,
    state: StepState,
    to: str,
    *,
    result: Any = None,
    error: str = "",
    reason: str = "",
    attempts: int | None = None,
    quiet: bool = False,
    verdict: Verdict | None = None,
    result_json: str | None = None,
) -> None:
    """Record a step transition in ``batch`` and mirror it in memory."""
    write = change(
        batch,
        state,
        to,
        result=result,
        error=error,
        attempts=attempts,
        verdict=verdict,
        result_json=result_json,
    )
    if quiet:  # a retry: the row changes, the retry event (already queued) tells the story
        check_step_transition(write.expect, write.status, what=f"step {state.key!r}")
        batch.steps.append(write)
        return
    shown = result is not None and write.status in _SHOWS_RESULT
    record(
        batch,
        state,
        write,
        result_json=(result_json or to_json(result)) if shown else "null",
        error=error,
        reason=reason,
    )


def finish(batch: Batch, state: StepState, outcome: Outcome) -> None:
    """Record a finished call: the evaluator's verdict (if any) and the step's new status."""
    if state.locks:  # its resource locks go in the same commit
        batch.unlock.append(state.id)
    verdict = outcome.verdict
    if verdict is not None:
        batch.events.append(
            (
                EVALUATOR,
                StepVerdict(
                    step_id=state.id,
                    step=state.key,
                    status=verdict.status,
                    reason=verdict.reason,
                    check=verdict.check,
                ),
            )
        )
    transition(
        batch,
        state,
        _SUCCEEDED if outcome.ok else _FAILED,
        result=outcome.result,
        error="" if outcome.ok else outcome.error,
        verdict=verdict,
        result_json=outcome.result_json,
    )

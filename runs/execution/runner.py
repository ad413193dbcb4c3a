"""Runs one step's call: params resolution, the tool call with timeout and retries, the evaluator."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from reviews.models import EscalationCause
from runs import llmtools
from runs.dbthreads import in_db_thread
from runs.evaluation.checks import FAIL, Verdict, combine, has_rubric, run_check
from runs.evaluation.rubric import judge
from runs.events import StepRetrying
from runs.execution.children import child_outcome
from runs.execution.deadlines import Deadlines
from runs.execution.journal import Batch
from runs.execution.ports import SupervisionPort
from runs.execution.remote import RemoteStepLost, call_remote, runs_remotely
from runs.execution.run_state import RunState
from runs.execution.steps import EXECUTOR, Outcome, S, StepState, to_json, transition
from runs.execution.writes import Committer
from runs.planning.accounting import run_llm_totals
from runs.planning.params import params_problems
from runs.planning.references import ReferenceResolutionError, resolve_references
from runs.planning.subplans import SUBPLAN_SPEC
from runs.telemetry.tracing import step_span
from runs.textdata import storable_copy, storable_text
from runs.tools.asking import Answer, Question, current_asker
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from runs.tools.registry import call_timeout, invoke_tool

log = logging.getLogger(__name__)
# A NUL or a surrogate in JSON text (ASCII-escaped): neither NUL nor a lone surrogate
# stores; a pair is rechecked by ``storable_copy``, which leaves it as it is.
_MAY_NOT_STORE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")

MAX_BACKOFF_SECONDS = 60.0


def resolve_params(state: StepState, results: dict[str, Any]) -> Any:
    """The params of a step whose params hold references, with those resolved and checked."""
    try:
        params = resolve_references(state.params, results, step=state.key)
    except ReferenceResolutionError as exc:
        raise ValueError(f"cannot resolve params: {exc}") from exc
    if state.tool is not None and state.tool.parameters_schema:
        # The compiled check is cached per schema; the resolved params hold no references.
        problems = sorted(
            params_problems(state.tool.parameters_schema, params, allow_references=False),
            key=lambda p: list(p.location),
        )
        if problems:
            detail = "; ".join(
                f"{'.'.join(map(str, p.location)) or 'params'}: {p.message}" for p in problems
            )
            raise ValueError(f"params after resolving references are invalid: {detail}")
    return params


class StepAsker:
    """The current step's asker (``runs.tools.asking``): supervision asks a human."""

    def __init__(self, supervision: SupervisionPort, run: RunState, state: StepState) -> None:
        self.supervision = supervision
        self.run = run
        self.state = state
        # The call was stopped (timeout, cancel) while it waited for an answer.
        self.stopped_waiting = False

    async def __call__(self, question: Question) -> Answer:
        try:
            return await self.supervision.ask(self.run, self.state, question)
        except asyncio.CancelledError:
            self.stopped_waiting = True
            raise


class StepRunner:
    """Calls steps' tools for one run; each call in a task of its own, under its deadline."""

    def __init__(
        self,
        run: RunState,
        committer: Committer,
        deadlines: Deadlines,
        *,
        backoff_seconds: float,
        supervision: SupervisionPort | None = None,
    ) -> None:
        self.run = run
        self.committer = committer
        self.deadlines = deadlines
        self.backoff_seconds = backoff_seconds
        # Answers tools' questions (MCP elicitation); None: a tool asking fails its call.
        self.supervision = supervision

    async def run_step(self, state: StepState, params: Any) -> Outcome:
        """Call the tool with timeout and retries; never raises except on cancellation."""
        spec = state.tool
        if spec is None or not spec.enabled:
            return Outcome(False, error=f"tool {state.tool_name!r} is missing or disabled")
        if spec is SUBPLAN_SPEC:  # no call: the step's outcome is its child run's
            return await in_db_thread(lambda: child_outcome(state.id))
        max_attempts = 1 + (spec.max_retries if spec.repeatable else 0)
        key = state.idempotency_key
        deadlines = self.deadlines
        task = asyncio.current_task()
        assert task is not None  # steps run in tasks of their own
        remote = runs_remotely(spec, llmtools.KINDS)
        while True:
            timeout = spec.timeout_seconds
            if remote:  # the pool worker holds the call to the tool's timeout
                deadlines.disarm(task)
            elif not deadlines.is_armed(task):
                deadlines.arm((task,), timeout)
            asker = StepAsker(self.supervision, self.run, state) if self.supervision else None
            asking = current_asker.set(asker)
            error: str | None = None
            retryable = False
            try:
                with step_span(spec.name, state.key, state.attempts):  # a span, log ids
                    if remote:
                        result = await call_remote(state, spec, params)
                    elif spec.kind in llmtools.KINDS:  # a prompt or an agent: model calls, budgets
                        result = await llmtools.call(
                            spec, params, self.run, step=state.key, key=key
                        )
                    else:
                        call = invoke_tool(spec, params, key)
                        own = call_timeout(call, spec)
                        if own != timeout:  # an injected fault's own, shorter deadline
                            timeout = own
                            deadlines.disarm(task)
                            deadlines.arm((task,), timeout)
                        result = await call
            except asyncio.CancelledError:
                if not deadlines.expired(task):
                    deadlines.disarm(task)
                    raise  # cancelled: the run stops
                error = f"timed out after {timeout:g}s"
                if asker is not None and asker.stopped_waiting:
                    error += " waiting for an answer to the tool's question (nobody answered)"
                retryable = True
            except RemoteStepLost as exc:
                self.run.stop = (EscalationCause.PARTIAL_RUN, state.id)
                return Outcome(False, error=storable_text(exc.message))
            except ToolConfigError as exc:
                error, retryable = exc.message, False
            except ToolError as exc:
                error, retryable = exc.message, True
            except Exception as exc:  # a broken tool must fail its step, not the executor
                log.exception("tool %s raised", spec.name)
                error, retryable = f"{type(exc).__name__}: {exc}", True
            finally:
                current_asker.reset(asking)
            if error is None:
                deadlines.disarm(task)
                try:
                    # The result is stored and shown: it must be JSON (NaN and Infinity are not).
                    text = to_json(result)
                except (TypeError, ValueError) as exc:
                    return Outcome(False, error=f"tool returned a result that is not JSON: {exc}")
                if _MAY_NOT_STORE.search(text):  # rare: one scan rules it out
                    # A NUL or a lone surrogate no database column takes: stored escaped.
                    result = storable_copy(result)
                    text = to_json(result)
                if not spec.checks:
                    return Outcome(True, result=result, result_json=text)
                return await self._judge(state, spec, result, text)
            deadlines.disarm(task)
            error = storable_text(error)  # a tool's stderr may hold a NUL
            if not retryable or state.attempts >= max_attempts:
                return Outcome(False, error=error)
            await asyncio.sleep(await self._record_retry(state, error))

    async def _judge(self, state: StepState, spec: ToolSpec, result: Any, text: str) -> Outcome:
        """The outcome of a call whose result (``text`` as JSON) the tool's checks judge."""
        verdict = await self.evaluate(state, spec, result)
        if verdict.status == FAIL:
            return Outcome(
                False,
                result=result,
                error=f"evaluator: {verdict.reason}",
                verdict=verdict,
                result_json=text,
            )
        return Outcome(True, result=result, verdict=verdict, result_json=text)

    async def _record_retry(self, state: StepState, error: str) -> float:
        """Commit the step's next attempt and its ``step.retrying`` event; returns the backoff."""
        delay = min(self.backoff_seconds * 2 ** (state.attempts - 1), MAX_BACKOFF_SECONDS)
        batch = Batch(self.run.run_id)
        attempt = state.attempts + 1
        batch.events.append(
            (
                EXECUTOR,
                StepRetrying(
                    step_id=state.id,
                    step=state.key,
                    attempt=attempt,
                    delay_seconds=delay,
                    error=error,
                ),
            )
        )
        transition(batch, state, S.RUNNING, error=error, attempts=attempt, quiet=True)
        await self.committer.commit_retry(batch)
        return delay

    async def evaluate(self, state: StepState, spec: ToolSpec, result: Any) -> Verdict:
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
        run = self.run

        def work() -> list[tuple[dict[str, Any], str | None]]:

            judged = [(c, judge(c, result, run_id=run.run_id, step=state.key)) for c in rubrics]
            if run.budgeted:  # the rubric's tokens count against the run's budgets
                totals = run_llm_totals(run.run_id)
                run.usage.tokens = totals.tokens_in + totals.tokens_out
                run.usage.cost = totals.cost
            return judged

        return combine(outcomes + await in_db_thread(work))

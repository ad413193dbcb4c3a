"""The step runner: params from references, the tool call with timeout and retries, the evaluator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from runs.execution import runner as runner_module
from runs.execution.deadlines import Deadlines
from runs.execution.run_state import RunState
from runs.execution.runner import StepRunner, resolve_params
from runs.execution.steps import Outcome, StepState
from runs.tools.base import ToolConfigError, ToolError, ToolSpec
from tests.runs.execution.units import KeptJournal, committer, step, tool

Call = Callable[[ToolSpec, Any, str | None], Awaitable[Any]]


def _run(
    state: StepState, call: Call, monkeypatch: pytest.MonkeyPatch
) -> tuple[Outcome, KeptJournal]:
    """Run ``state`` (already ``running``) with ``call`` as the tool; returns its outcome and commits."""
    monkeypatch.setattr(runner_module, "invoke_tool", call)

    async def main() -> tuple[Outcome, KeptJournal]:
        c, journal = committer(RunState(1, "lease"))
        deadlines = Deadlines(asyncio.get_running_loop())
        try:
            runner = StepRunner(c.run, c, deadlines, backoff_seconds=0.001)
            return await asyncio.create_task(runner.run_step(state, state.params)), journal
        finally:
            deadlines.close()

    return asyncio.run(main())


def _running(key: str = "a", **spec: Any) -> StepState:
    return step(key, status="running", attempts=1, spec=tool(**spec))


def test_references_resolve_against_the_results_of_the_steps_they_name() -> None:
    s = step("b", "a", params={"n": "{{ steps.a.result.count }}"}, has_refs=True)
    assert resolve_params(s, {"a": {"count": 3}}) == {"n": 3}


def test_unresolvable_or_invalid_params_are_a_value_error_naming_the_problem() -> None:
    missing = step("b", "a", params={"n": "{{ steps.a.result.count }}"}, has_refs=True)
    with pytest.raises(ValueError, match="cannot resolve params"):
        resolve_params(missing, {"a": {}})
    typed = step(
        "b",
        "a",
        params={"n": "{{ steps.a.result.count }}"},
        has_refs=True,
        spec=tool(parameters_schema={"type": "object", "properties": {"n": {"type": "integer"}}}),
    )
    with pytest.raises(ValueError, match="n: 'x' is not of type 'integer'"):
        resolve_params(typed, {"a": {"count": "x"}})


def test_a_missing_or_disabled_tool_fails_the_step_without_a_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def never(spec: ToolSpec, params: Any, key: str | None) -> Any:
        raise AssertionError("called")

    outcome, _ = _run(_running(enabled=False), never, monkeypatch)
    assert not outcome.ok and "missing or disabled" in outcome.error


def test_an_idempotent_tool_is_retried_and_each_retry_commits_its_attempt(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    async def flaky(spec: ToolSpec, params: Any, key: str | None) -> Any:
        calls.append(1)
        if len(calls) < 3:
            raise ToolError("try again")
        return {"ok": True}

    s = _running(max_retries=2)
    outcome, journal = _run(s, flaky, monkeypatch)
    assert outcome.ok and outcome.result_json == '{"ok": true}' and s.attempts == 3
    assert [[e.kind for _, e in b.events] for b in journal.batches] == [["step.retrying"]] * 2


def test_every_attempt_of_a_step_carries_the_steps_idempotency_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys: list[str | None] = []

    async def flaky(spec: ToolSpec, params: Any, key: str | None) -> Any:
        keys.append(key)
        if len(keys) < 3:
            raise ToolError("try again")
        return {"ok": True}

    s = _running(max_retries=2)
    s.idempotency_key = "5f0c9e02-8a52-4c1e-9a38-3c1d2f0a7b11"
    outcome, _ = _run(s, flaky, monkeypatch)
    assert outcome.ok and keys == [s.idempotency_key] * 3


def test_a_tool_honouring_the_idempotency_key_is_retried_though_not_idempotent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str | None] = []

    async def flaky(spec: ToolSpec, params: Any, key: str | None) -> Any:
        calls.append(key)
        if len(calls) < 2:
            raise ToolError("try again")
        return {"ok": True}

    s = _running(idempotent=False, honours_idempotency_key=True, max_retries=1)
    s.idempotency_key = "k-1"
    outcome, journal = _run(s, flaky, monkeypatch)
    assert outcome.ok and calls == ["k-1", "k-1"] and s.attempts == 2
    assert [[e.kind for _, e in b.events] for b in journal.batches] == [["step.retrying"]]


def test_a_non_idempotent_tool_or_a_config_error_is_never_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(spec: ToolSpec, params: Any, key: str | None) -> Any:
        raise ToolError("once")

    outcome, journal = _run(_running(idempotent=False, max_retries=3), broken, monkeypatch)
    assert (outcome.ok, outcome.error, journal.batches) == (False, "once", [])

    async def misconfigured(spec: ToolSpec, params: Any, key: str | None) -> Any:
        raise ToolConfigError("bad config")

    outcome, journal = _run(_running(max_retries=3), misconfigured, monkeypatch)
    assert (outcome.ok, outcome.error, journal.batches) == (False, "bad config", [])


def test_a_call_past_its_timeout_fails_with_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow(spec: ToolSpec, params: Any, key: str | None) -> Any:
        await asyncio.sleep(5)

    outcome, _ = _run(_running(timeout_seconds=0.01), slow, monkeypatch)
    assert (outcome.ok, outcome.error) == (False, "timed out after 0.01s")


def test_a_result_that_is_not_json_fails_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    async def nan(spec: ToolSpec, params: Any, key: str | None) -> Any:
        return float("nan")

    outcome, _ = _run(_running(), nan, monkeypatch)
    assert not outcome.ok and "not JSON" in outcome.error


def test_the_evaluator_fails_a_result_that_breaks_a_check(monkeypatch: pytest.MonkeyPatch) -> None:
    async def small(spec: ToolSpec, params: Any, key: str | None) -> Any:
        return {"rows": 0}

    checks = ({"type": "range", "path": "rows", "min": 1},)
    outcome, _ = _run(_running(checks=checks), small, monkeypatch)
    assert not outcome.ok and outcome.verdict is not None and outcome.verdict.status == "fail"
    assert outcome.error.startswith("evaluator: ") and outcome.result == {"rows": 0}

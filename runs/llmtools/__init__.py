"""Steps whose tool is a focused prompt (``llm``) or an agent (``agent``), called by the executor.

A capability between the executor and the planning package: the calls need the
providers, the repair round and the accounting of ``runs.planning``, which the
tool registry below it may not import. The executor hands those two kinds here
(``call``) and every other kind to ``runs.tools.registry.invoke_tool``.
"""

from __future__ import annotations

from typing import Any, Protocol

from runs.dbthreads import in_db_thread
from runs.llmtools.agent import calls_redo, in_doubt, run_agent
from runs.llmtools.answer import answer
from runs.planning.accounting import run_llm_totals
from runs.tools.base import ToolSpec
from runs.tools.kinds import agent, llm

KINDS = frozenset({llm.KIND, agent.KIND})
__all__ = ["KINDS", "call", "calls_redo", "in_doubt"]


class Usage(Protocol):
    tokens: int
    cost: Any


class RunUsage(Protocol):
    """What ``call`` reads and updates of the executor's run (``RunState``)."""

    @property
    def run_id(self) -> int: ...
    @property
    def budgeted(self) -> bool: ...
    @property
    def usage(self) -> Usage: ...


async def call(
    spec: ToolSpec, params: dict[str, Any], run: RunUsage, *, step: str, key: str | None
) -> Any:
    """The step's answer (an llm or an agent tool); the run's token and cost usage follow its calls."""
    try:
        if spec.kind == agent.KIND:
            return await run_agent(spec, params, run_id=run.run_id, step=step, key=key or step)
        return await in_db_thread(lambda: answer(spec, params, run_id=run.run_id, step=step))
    finally:
        if run.budgeted:  # the calls count against the run's budgets, failed ones too
            await in_db_thread(lambda: _count(run))


def _count(run: RunUsage) -> None:
    totals = run_llm_totals(run.run_id)
    run.usage.tokens = totals.tokens_in + totals.tokens_out
    run.usage.cost = totals.cost

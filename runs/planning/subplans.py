"""The built-in ``subplan`` action: a step whose goal is planned and executed as a child run.

A plan step ``{"action": "subplan", "params": {"goal": ..., "planner": ..., "policy": ...}}``
is checked like a call of a tool with ``SUBPLAN_SPEC``'s parameters schema, so a bad
one gets the same clear problems as bad tool params. The engine hands it to the
lifecycle (``runs.lifecycle.subplans``) instead of calling a tool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runs.tools.base import ToolSpec

SUBPLAN = "subplan"
# The planners a child may name ("" or absent: the parent task's own planner).
SUBPLAN_PLANNERS = ("playbook", "openai", "anthropic", "compatible", "chain", "manual")
# The review policies a child may be approved under ("" or absent: the usual policies).
SUBPLAN_POLICIES = ("always", "sensitive", "low_confidence", "never")

SUBPLAN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "goal": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "description": "What the child run must achieve; it is planned on its own.",
        },
        "planner": {
            "type": "string",
            "enum": list(SUBPLAN_PLANNERS),
            "description": "Who plans the child (default: this task's planner).",
        },
        "policy": {
            "type": "string",
            "enum": list(SUBPLAN_POLICIES),
            "description": "When the child's plan needs a reviewer (default: the usual policies).",
        },
    },
    "required": ["goal"],
    "additionalProperties": False,
}

# Repeatable: taking a step's outcome from its child run again does no harm, so a
# worker that died while recording it hands the step back instead of escalating.
SUBPLAN_SPEC = ToolSpec(
    name=SUBPLAN,
    kind=SUBPLAN,
    parameters_schema=SUBPLAN_SCHEMA,
    timeout_seconds=3600.0,
    idempotent=True,
)

SUBPLAN_GUIDANCE = """The action "subplan" (no tool of that name is needed) hands one phase of a large
task to a child run: params {"goal": "<the phase, in one sentence>"} and optionally "planner" and
"policy". The child is planned, approved and executed on its own; its results become this step's
result ({"child_run": <id>, "status": "succeeded", "results": {<child step id>: <result>}})."""


def with_subplan(tools: Mapping[str, ToolSpec]) -> Mapping[str, ToolSpec]:
    """``tools`` with the built-in ``subplan`` action (it takes the name over from any tool)."""
    if tools.get(SUBPLAN) is SUBPLAN_SPEC:
        return tools
    return {**tools, SUBPLAN: SUBPLAN_SPEC}


def is_subplan(tool_id: int | None, tool_name: str) -> bool:
    """Whether a stored step is a subplan step (no registry tool, the built-in name)."""
    return tool_id is None and tool_name == SUBPLAN

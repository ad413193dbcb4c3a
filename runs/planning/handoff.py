"""Hybrid handoff: a planner hands the rest of the work to a registered deterministic workflow.

A planner may answer ``{"handoff": "<workflow>", "params": {...}}`` instead of a plan.
The workflow (``runs.models.Workflow``: a plan template and a JSON Schema of its
parameters) is instantiated here:
1. the workflow must exist and be enabled, and ``params`` must satisfy its schema
   (its defaults filled in); params may reference earlier results
   (``{{ steps.<id>.result }}``): the results so far;
2. every ``{{ params.<name> }}`` in the template's strings is replaced: a string
   that is only the placeholder takes the value as it is (a number stays a number),
   a placeholder inside text takes its text;
3. the document that comes out is then validated like any plan, so a bad template
   or a bad value gets the planner's repair round with the problems.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from runs.models import Workflow
from runs.planning.params import ParamsSchemaError, params_problems
from runs.planning.schema import PlanDocument
from runs.planning.validation import PlanProblem

HANDOFF = "handoff"
_PLACEHOLDER = re.compile(r"\{\{\s*params\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class WorkflowInfo:
    """A workflow as a planner sees it."""

    name: str
    description: str
    parameters: dict[str, Any]


@dataclass
class Handoff:
    """An instantiated handoff: the plan it came to, or the problems that stopped it."""

    workflow: str
    params: dict[str, Any]
    document: Any = None
    problems: list[PlanProblem] | None = None


def workflow_shape_problems(document: Any) -> list[str]:
    """Why a workflow's template is not a plan's shape ([] when it is; placeholders stay unchecked)."""
    try:
        PlanDocument.model_validate(document)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(p) for p in e['loc']) or '(plan)'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        ]
    return []


def load_workflows() -> list[WorkflowInfo]:
    """The enabled workflows, as planners see them."""
    return [
        WorkflowInfo(w.name, w.description, w.parameters_schema or {"type": "object"})
        for w in Workflow.objects.filter(enabled=True).order_by("name")
    ]


def is_handoff(data: Any) -> bool:
    """Whether a planner's answer is a handoff rather than a plan or a step."""
    return isinstance(data, dict) and HANDOFF in data and not data.get("steps")


def handoff_json_schema(schema: dict[str, Any], workflows: list[WorkflowInfo]) -> dict[str, Any]:
    """A plan (or step) schema widened so the answer may be a handoff to one of ``workflows``."""
    if not workflows:
        return schema
    widened = {**schema, "properties": dict(schema.get("properties", {}))}
    widened["properties"][HANDOFF] = {
        "type": "string",
        "enum": [w.name for w in workflows],
        "description": "A registered workflow that finishes the work, instead of more steps.",
    }
    widened["properties"]["params"] = {
        "type": "object",
        "description": "The workflow's parameters (with a handoff).",
    }
    widened["required"] = [r for r in schema.get("required", []) if r not in ("steps", "tool")]
    return widened


def workflow_lines(workflows: list[WorkflowInfo]) -> str:
    """The prompt's part on workflows ('' when none is registered)."""
    if not workflows:
        return ""
    lines = [
        "Workflows (deterministic, tested): instead of a plan you may answer "
        '{"handoff": "<workflow>", "params": {...}} to let one finish the work; its params '
        'may use earlier results ("{{ steps.<id>.result }}").'
    ]
    for w in workflows:
        lines.append(f"- {w.name}: {w.description}")
        lines.append(f"  parameters: {json.dumps(w.parameters, sort_keys=True)}")
    return "\n".join(lines)


def expand_handoff(data: dict[str, Any]) -> Handoff:
    """Instantiate the named workflow with the answer's params (see the module docstring)."""
    name = data.get(HANDOFF)
    params = data.get("params", {})
    handoff = Handoff(workflow=str(name), params=params if isinstance(params, dict) else {})
    extra = sorted(set(data) - {HANDOFF, "params", "goal", "confidence", "reason"})
    if extra:
        return _refused(
            handoff,
            "",
            "handoff_shape",
            f"A handoff takes only handoff and params, not {extra[0]!r}.",
        )
    workflow = (
        Workflow.objects.filter(name=name, enabled=True).first() if isinstance(name, str) else None
    )
    if workflow is None:
        names = ", ".join(w.name for w in load_workflows()) or "none"
        return _refused(
            handoff,
            HANDOFF,
            "unknown_workflow",
            f"There is no enabled workflow named {str(name)!r}; the workflows are: {names}.",
        )
    if not isinstance(params, dict):
        return _refused(
            handoff, "params", "workflow_params", "A handoff's params must be an object."
        )
    schema = workflow.parameters_schema or {"type": "object"}
    values = {**_defaults(schema), **params}
    try:
        problems = params_problems(schema, values, allow_references=True)
    except ParamsSchemaError as exc:
        return _refused(handoff, HANDOFF, "workflow_schema", f"Workflow {workflow.name}: {exc}")
    if problems:
        handoff.problems = [
            PlanProblem(
                "params" + "".join(f".{p}" for p in problem.location),
                "workflow_params",
                f"Workflow {workflow.name}: {problem.message}",
            )
            for problem in problems
        ]
        return handoff
    missing: list[str] = []
    handoff.params = values
    handoff.document = _fill(workflow.document, values, missing)
    if missing:
        return _refused(
            handoff,
            "params",
            "workflow_params",
            f"Workflow {workflow.name} needs the parameter(s) {', '.join(sorted(set(missing)))}.",
        )
    return handoff


def handoff_record(handoff: Handoff, validated: Any) -> dict[str, Any]:
    """What the transcript's ``planner.handoff`` event says of an instantiated handoff."""
    document = getattr(validated, "document", None)
    steps = len(document.steps) if document is not None else 0
    return {"workflow": handoff.workflow, "params": handoff.params, "steps": steps}


def _refused(handoff: Handoff, path: str, code: str, message: str) -> Handoff:
    handoff.problems = [PlanProblem(path, code, message)]
    return handoff


def _defaults(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return {}
    return {
        k: v["default"] for k, v in properties.items() if isinstance(v, dict) and "default" in v
    }


def _fill(value: Any, params: dict[str, Any], missing: list[str]) -> Any:
    """``value`` with every ``{{ params.<name> }}`` replaced (names not given go to ``missing``)."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole is not None:
            if whole[1] not in params:
                missing.append(whole[1])
                return value
            return params[whole[1]]

        def text(match: re.Match[str]) -> str:
            if match[1] not in params:
                missing.append(match[1])
                return match[0]
            found = params[match[1]]
            return found if isinstance(found, str) else json.dumps(found)

        return _PLACEHOLDER.sub(text, value)
    if isinstance(value, list):
        return [_fill(v, params, missing) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, params, missing) for k, v in value.items()}
    return value

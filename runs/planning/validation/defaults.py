"""Parameter defaults: what a tool's JSON Schema says a missing parameter is, filled in at validation.

JSON Schema's ``default`` is only an annotation; a validator never applies it. So
a plan leaving out a parameter that has one (``{"action": "run_tests", "params":
{}}``) would fail a ``required`` check, and a tool would run without a value its
author meant it to have. Validation fills them in before the checks, and the plan
version stores the filled-in params, so a reviewer approves what will run.

1. A property missing from the params gets a copy of its ``default``.
2. An object value (given, or just defaulted) gets its own properties' defaults
   the same way, level by level. Nothing else is followed (no ``$ref``,
   ``allOf`` or array items); an explicit ``null`` stays null.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from runs.planning.schema import PlanDocument
from runs.tools.base import ToolSpec

# (index into the document's list, the step with its params filled in)
Filled = list[tuple[int, Any]]
# A step's own tool calls besides its action, filled in the same way.
_NESTED = ("undo", "fallback")


def has_defaults(schema: Any) -> bool:
    """Whether ``schema`` has a ``default`` anywhere ``with_defaults`` looks."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict):
        return False
    return any(
        isinstance(prop, dict) and ("default" in prop or has_defaults(prop))
        for prop in properties.values()
    )


def with_defaults(schema: Any, params: Any) -> dict[str, Any] | None:
    """``params`` with the schema's defaults filled in; None when there is nothing to fill."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(params, dict) or not isinstance(properties, dict):
        return None
    filled: dict[str, Any] | None = None
    for name, prop in properties.items():
        if not isinstance(prop, dict):
            continue
        if name in params:
            value = params[name]
        elif "default" in prop:
            value = copy.deepcopy(prop["default"])
        else:
            continue
        inner = with_defaults(prop, value)
        if inner is not None:
            value = inner
        if inner is not None or name not in params:
            filled = dict(params) if filled is None else filled
            filled[name] = value
    return filled


class DefaultsFiller:
    """Fills steps' params from their tools' schemas; remembers per tool whether it has any."""

    def __init__(self, tools: Mapping[str, ToolSpec]) -> None:
        self.tools = tools
        self._schemas: dict[str, dict[str, Any] | None] = {}

    def fill(self, steps: list[tuple[int, Any]]) -> tuple[list[tuple[int, Any]], Filled]:
        """The steps (pydantic plan steps) with defaults filled in, and those that changed."""
        changed: Filled = []
        out = []
        for index, step in steps:
            update: dict[str, Any] = {}
            filled = self._filled(step)
            if filled is not None:
                update["params"] = filled
            for name in _NESTED:  # a step's own undo and fallback are tool calls too
                call = getattr(step, name, None)
                if call is not None and (nested := self._filled(call)) is not None:
                    update[name] = call.model_copy(update={"params": nested})
            if update:
                step = step.model_copy(update=update)
                changed.append((index, step))
            out.append((index, step))
        return out, changed

    def _filled(self, call: Any) -> dict[str, Any] | None:
        """``call``'s params with its tool's defaults filled in; None when nothing changes."""
        schema = self._schema(call.action)
        return with_defaults(schema, call.params) if schema is not None else None

    def _schema(self, action: str) -> dict[str, Any] | None:
        try:
            return self._schemas[action]
        except KeyError:
            spec = self.tools.get(action)
            schema = spec.parameters_schema if spec is not None else None
            found = self._schemas[action] = schema if has_defaults(schema) else None
            return found


def document_with(
    document: PlanDocument | None, steps: Filled, rollback: Filled
) -> PlanDocument | None:
    """The parsed plan with the filled-in steps in place of the submitted ones."""
    if document is None or not (steps or rollback):
        return document
    new_steps = list(document.steps)
    new_rollback = list(document.rollback)
    for index, step in steps:
        new_steps[index] = step
    for index, step in rollback:
        new_rollback[index] = step
    return document.model_copy(update={"steps": new_steps, "rollback": new_rollback})


_PARAMS_KEYS = ("params", "arguments", "args")  # in the order the plan schema reads them


def raw_with(raw: Any, steps: Filled, rollback: Filled) -> Any:
    """The submitted document (object or list form) with the filled-in params in place.

    Everything else stays as submitted; only the changed steps are copied.
    """
    if not (steps or rollback):
        return raw
    if isinstance(raw, list):
        return _replace_params(raw, steps)
    out = dict(raw)
    if steps:
        out["steps"] = _replace_params(raw["steps"], steps)
    if rollback:
        out["rollback"] = _replace_params(raw["rollback"], rollback)
    return out


def _replace_params(items: list[Any], filled: Filled) -> list[Any]:
    out = list(items)
    for index, step in filled:
        item = _with_params(out[index], step.params)
        for name in _NESTED:
            call = getattr(step, name, None)
            if call is not None and isinstance(item.get(name), dict):
                item[name] = _with_params(item[name], call.params)
        out[index] = item
    return out


def _with_params(item: dict[str, Any], params: Any) -> dict[str, Any]:
    """A copy of the submitted ``item`` with ``params`` under the key it used for them."""
    item = dict(item)
    item[next((k for k in _PARAMS_KEYS if k in item), "params")] = params
    return item

"""How validation words a problem: shape errors in plain language, labels, paths, suggestions."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from runs.planning.params import ParamProblem
from runs.planning.references import format_location
from runs.planning.schema import (
    PlanStep,
    RollbackStep,
)
from runs.planning.validation.problems import PlanProblem

MAX_MESSAGE = 300


MAX_TOOLS_LISTED = 15


# -- shape errors from pydantic ------------------------------------------------------------
STEP_KEYS = ("id", "action", "params", "depends_on", "description", "confidence", "undo")


ROLLBACK_KEYS = ("action", "params", "description", "undoes")


PLAN_KEYS = ("goal", "steps", "rollback")


ALIASES = {"tool": "action", "args": "params", "arguments": "params"}


def shape_problems(exc: ValidationError, normalized: Any) -> list[PlanProblem]:
    return [
        PlanProblem(format_location(error["loc"]), "shape", shape_message(error, normalized))
        for error in exc.errors(include_url=False)
    ]


def shape_message(error: Any, normalized: Any) -> str:
    loc: tuple[str | int, ...] = error["loc"]
    kind: str = error["type"]
    value = error.get("input")
    in_step = len(loc) >= 2 and loc[0] in ("steps", "rollback") and isinstance(loc[1], int)
    if in_step:
        section, index = str(loc[0]), int(loc[1])
        item = get_index(get_key(normalized, section), index)
        subject = raw_label(section, index, item)
        allowed: tuple[str, ...] = ROLLBACK_KEYS if section == "rollback" else STEP_KEYS
        rest = loc[2:]
    else:
        item, subject, allowed, rest = normalized, "The plan", PLAN_KEYS, loc
    field = rest[0] if rest else None

    if kind == "missing":
        if loc == ("steps",):
            return "The plan has no 'steps' list; add one."
        return (
            f"{subject} is missing '{field}'{' (the tool to call)' if field == 'action' else ''}."
        )
    if kind == "extra_forbidden":
        key = str(loc[-1])
        canonical = ALIASES.get(key) if in_step else None
        if canonical is not None and isinstance(item, dict):
            given = [k for k in item if ALIASES.get(k, k) == canonical]
            return f"{subject} gives {' and '.join(repr(k) for k in given)}; keep only one."
        hint = suggest(key, allowed) or f" (allowed keys: {', '.join(allowed)})"
        return f"{subject} has an unknown key '{key}'{hint}."
    where = format_location(rest) if rest else ""
    what = f"'{where}'" if where else "it"
    if kind == "string_pattern_mismatch":
        return (
            f"{subject}: {value!r} is not a valid step id; use letters, digits, '_' and '-' "
            "(not starting with '-', at most 100 characters)."
        )
    if kind in ("model_type", "model_attributes_type"):
        return (
            f"{subject} must be an object with 'id', 'action' and 'params', got {json_kind(value)}."
        )
    if kind == "dict_type":
        return f"{subject}: {what} must be an object of names to values, got {json_kind(value)}."
    if kind == "list_type":
        return f"{subject}: {what} must be a list, got {json_kind(value)}."
    if kind == "string_type":
        return f"{subject}: {what} must be a string, got {json_kind(value)}."
    if field == "confidence":
        return f"{subject}: 'confidence' must be a number from 0 to 1, got {value!r}."
    return f"{subject}: {what}: {error['msg']}."


def raw_label(section: str, index: int, item: Any) -> str:
    if section == "rollback":
        return f"Rollback step {index + 1}"
    step_id = item.get("id") if isinstance(item, dict) else None
    action = item.get("action", item.get("tool")) if isinstance(item, dict) else None
    name = f"Step '{step_id}'" if isinstance(step_id, str | int) else f"Step {index + 1}"
    return f"{name} (tool '{action}')" if isinstance(action, str) else name


def bad_indexes(exc: ValidationError, section: str) -> set[int] | None:
    """Indexes of malformed items in ``section``; None when the section itself is unusable."""
    bad: set[int] = set()
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if not loc or loc[0] != section:
            continue
        if len(loc) < 2 or not isinstance(loc[1], int):
            return None
        bad.add(loc[1])
    return bad


def salvage_steps(
    normalized: Any, exc: ValidationError
) -> tuple[list[tuple[int, PlanStep]], set[str]]:
    """The well-formed steps, plus the ids of malformed ones (so they are not 'missing')."""
    items = get_key(normalized, "steps")
    bad = bad_indexes(exc, "steps")
    if not isinstance(items, list) or bad is None:
        return [], set()
    steps: list[tuple[int, PlanStep]] = []
    known: set[str] = set()
    for i, item in enumerate(items):
        if i in bad:
            raw_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
                known.add(str(raw_id))
            continue
        steps.append((i, PlanStep.model_validate(item)))
    return steps, known


def salvage_rollback(normalized: Any, exc: ValidationError) -> list[tuple[int, RollbackStep]]:
    items = get_key(normalized, "rollback")
    bad = bad_indexes(exc, "rollback")
    if not isinstance(items, list) or bad is None:
        return []
    return [(i, RollbackStep.model_validate(item)) for i, item in enumerate(items) if i not in bad]


def get_key(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def get_index(value: Any, index: int) -> Any:
    return value[index] if isinstance(value, list) and 0 <= index < len(value) else None


def raw_len(normalized: Any, key: str) -> int:
    items = get_key(normalized, key)
    return len(items) if isinstance(items, list) else 0


# -- params problems as sentences ---------------------------------------------------------
def describe_param_problem(problem: ParamProblem) -> list[tuple[str, str]]:
    """(location inside params, message) for one schema violation, in an operator's words."""
    trail = problem.location
    if problem.missing is not None:
        full = format_location([*trail, problem.missing])
        return [(full, f"the required param '{full}' is missing.")]
    if problem.unexpected:
        known = problem.accepted
        out = []
        for extra in problem.unexpected:
            full = format_location([*trail, extra])
            hint = suggest(extra, known) or (
                f" (it accepts {', '.join(known)})" if known else " (it accepts none)"
            )
            out.append((full, f"the tool has no param '{full}'{hint}."))
        return out
    where = problem.path
    subject = f"param '{where}'" if where else "params"
    return [(where, f"{subject}: {shorten(problem.message)}.")]


# -- message helpers -------------------------------------------------------------------
def step_label(step_id: str, action: str) -> str:
    return f"Step '{step_id}' (tool '{action}')"


def rollback_label(index: int, action: str) -> str:
    return f"Rollback step {index + 1} (tool '{action}')"


def param_phrase(location: str) -> str:
    return f"param '{location}'" if location else "params"


def params_path(where: str, location: str) -> str:
    if not location:
        return f"{where}.params"
    return f"{where}.params{location}" if location.startswith("[") else f"{where}.params.{location}"


def suggest(name: str, candidates: Sequence[str] | Mapping[str, Any] | Any) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


def shorten(text: str) -> str:
    text = text.rstrip(".")
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

"""Per-tool result checks, configured on ``Tool.checks``: pure functions from a result to a Verdict.

A tool's ``checks`` is a list of objects, each with a ``type`` and an optional
``on_fail`` (``fail``, the default, or ``warn``)::

    {"type": "json_schema", "schema": {...}}               # the result matches a JSON Schema
    {"type": "exit_code", "equals": 0}                      # result["exit_code"] (or "in": [0, 1])
    {"type": "contains", "text": "ok", "path": "stdout"}   # substring of a field (or the whole result)
    {"type": "regex", "pattern": "^done", "path": "stdout"}
    {"type": "range", "path": "rows", "min": 1, "max": 100}
    {"type": "llm_rubric", "rubric": "...", "provider": "openai", "model": "..."}

``path`` is a dotted path into the result (``items.0.name``); without it the
whole result is used (text as-is, anything else as JSON). ``llm_rubric`` is
judged by ``runs.evaluation.rubric`` (a model call), never here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

PASS, WARN, FAIL = "pass", "warn", "fail"
CHECK_TYPES = ("json_schema", "exit_code", "contains", "regex", "range", "llm_rubric")
_RANK = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Verdict:
    status: str  # pass | warn | fail
    reason: str = ""
    check: str = ""  # the check type that decided it ("" for a plain pass)

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "reason": self.reason, "check": self.check}


class _Missing:
    pass


MISSING = _Missing()


def pick(result: Any, path: str | None) -> Any:
    """The value at a dotted ``path`` in ``result`` (list indexes as digits); MISSING if absent."""
    if not path:
        return result
    value = result
    for part in str(path).split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif (
            isinstance(value, list)
            and part.lstrip("-").isdigit()
            and -len(value) <= int(part) < len(value)
        ):
            value = value[int(part)]
        else:
            return MISSING
    return value


def as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _where(check: dict[str, Any]) -> str:
    return f" at {check['path']!r}" if check.get("path") else ""


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def validate_checks(checks: Any) -> list[str]:
    """Every problem with a ``checks`` list ([] when it is fine); the admin, API and import use it."""
    if checks in (None, []):
        return []
    if not isinstance(checks, list):
        return ["checks must be a list of objects, each with a 'type'"]
    problems: list[str] = []
    for i, check in enumerate(checks):
        where = f"check {i + 1}"
        if not isinstance(check, dict):
            problems.append(f"{where}: must be an object")
            continue
        kind = check.get("type")
        if kind not in CHECK_TYPES:
            problems.append(f"{where}: unknown type {kind!r} (known: {', '.join(CHECK_TYPES)})")
            continue
        if check.get("on_fail", FAIL) not in (FAIL, WARN):
            problems.append(f"{where}: on_fail must be 'fail' or 'warn'")
        if "path" in check and not isinstance(check["path"], str):
            problems.append(f"{where}: path must be text like 'stdout' or 'items.0.id'")
        if kind == "json_schema":
            schema = check.get("schema")
            if not isinstance(schema, dict):
                problems.append(f"{where}: json_schema needs a 'schema' object")
            else:
                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as exc:
                    problems.append(f"{where}: invalid JSON Schema: {exc.message}")
        elif kind == "exit_code":
            codes = check.get("in", [check.get("equals", 0)])
            if not isinstance(codes, list) or not all(
                isinstance(c, int) and not isinstance(c, bool) for c in codes
            ):
                problems.append(f"{where}: exit_code takes 'equals' (an integer) or 'in' (a list)")
        elif kind == "contains":
            if not isinstance(check.get("text"), str) or not check["text"]:
                problems.append(f"{where}: contains needs a non-empty 'text'")
        elif kind == "regex":
            pattern = check.get("pattern")
            if not isinstance(pattern, str) or not pattern:
                problems.append(f"{where}: regex needs a 'pattern'")
            else:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    problems.append(f"{where}: invalid regex: {exc}")
        elif kind == "range":
            low, high = check.get("min"), check.get("max")
            if low is None and high is None:
                problems.append(f"{where}: range needs 'min', 'max' or both")
            elif any(v is not None and not _number(v) for v in (low, high)):
                problems.append(f"{where}: range 'min' and 'max' must be numbers")
            elif low is not None and high is not None and low > high:
                problems.append(f"{where}: range 'min' is above 'max'")
        elif kind == "llm_rubric" and (
            not isinstance(check.get("rubric"), str) or not check["rubric"].strip()
        ):
            problems.append(f"{where}: llm_rubric needs a 'rubric' (what a good result looks like)")
    return problems


def run_check(check: dict[str, Any], result: Any) -> str | None:
    """Why ``result`` fails one (non-rubric) check, or None when it passes."""
    kind = check["type"]
    value = pick(result, check.get("path") or ("exit_code" if kind == "exit_code" else None))
    if value is MISSING:
        return f"{kind}: the result has no {check.get('path') or 'exit_code'!r}"
    if kind == "json_schema":
        errors = sorted(
            Draft202012Validator(check["schema"]).iter_errors(value), key=lambda e: list(e.path)
        )
        if errors:
            first = errors[0]
            at = ".".join(map(str, first.path)) or "result"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            return f"json_schema: {at}: {first.message}{more}"
        return None
    if kind == "exit_code":
        codes = check.get("in", [check.get("equals", 0)])
        return None if value in codes else f"exit_code: {value!r}, expected {codes}"
    if kind == "contains":
        text = as_text(value)
        return (
            None
            if check["text"] in text
            else f"contains: {check['text']!r} not found{_where(check)}"
        )
    if kind == "regex":
        text = as_text(value)
        return (
            None
            if re.search(check["pattern"], text)
            else f"regex: no match for {check['pattern']!r}{_where(check)}"
        )
    if kind == "range":
        if not _number(value):
            return f"range: {as_text(value)[:60]!r}{_where(check)} is not a number"
        low, high = check.get("min"), check.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            return f"range: {value}{_where(check)} outside [{low}, {high}]"
        return None
    raise ValueError(f"run_check cannot judge a {kind!r} check")


def combine(outcomes: list[tuple[dict[str, Any], str | None]]) -> Verdict:
    """One verdict from each check's (check, failure or None): the worst wins, reasons joined."""
    worst, reasons, decider = PASS, [], ""
    for check, failure in outcomes:
        if failure is None:
            continue
        status = WARN if check.get("on_fail") == WARN else FAIL
        reasons.append(failure)
        if _RANK[status] > _RANK[worst]:
            worst, decider = status, check["type"]
        elif not decider:
            decider = check["type"]
    if worst == PASS:
        return Verdict(PASS, f"{len(outcomes)} check(s) passed")
    return Verdict(worst, "; ".join(reasons), decider)


def evaluate(checks: list[dict[str, Any]], result: Any) -> Verdict:
    """Judge ``result`` by every non-rubric check (rubrics: ``runs.evaluation.rubric``)."""
    return combine([(c, run_check(c, result)) for c in checks if c.get("type") != "llm_rubric"])


def has_rubric(checks: list[dict[str, Any]]) -> bool:
    return any(c.get("type") == "llm_rubric" for c in checks)

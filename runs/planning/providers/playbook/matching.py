"""Stored plans as cases, and parameter substitution for the playbook planner.

Which case fits a task is ranked in ``choice`` (BM25, ``runs.planning.retrieval``).
Substitution pairs the stored task's values with the new task's values of the
same type, in order of appearance, and rewrites them everywhere in the plan.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from runs.planning.retrieval.text import VALUE


@dataclass(frozen=True)
class Case:
    name: str
    text: str
    document: Any


@dataclass(frozen=True)
class ParamChange:
    """One step parameter the task's values rewrote: which, from what value in the task, and how."""

    parameter: str  # "<step id>.<param>"
    task_value: str  # the value as the task wrote it
    replaced: str  # the stored task's value it stands in for
    before: str  # the parameter in the stored plan
    after: str  # the parameter in this plan

    def as_dict(self) -> dict[str, str]:
        return {
            "parameter": self.parameter,
            "task_value": self.task_value,
            "replaced": self.replaced,
            "before": self.before,
            "after": self.after,
        }


@dataclass
class SubstitutionReport:
    substituted: list[tuple[str, str]] = field(default_factory=list)
    unfilled: list[str] = field(default_factory=list)
    changes: list[ParamChange] = field(default_factory=list)


def values(text: str) -> list[tuple[str, str]]:
    """The concrete values in ``text`` as (type, value), in order, without repeats."""
    seen: dict[tuple[str, str], None] = {}
    for m in VALUE.finditer(text):
        kind = m.lastgroup or ""
        value = m.group(kind)
        if kind == "quoted":
            value = value[1:-1]
        seen.setdefault((kind, value), None)
    return list(seen)


def substitute(document: Any, stored_text: str, task_text: str) -> tuple[Any, SubstitutionReport]:
    """The stored plan with the stored task's values replaced by the new task's."""
    report = SubstitutionReport()
    stored = values(stored_text)
    wanted = values(task_text)
    pairs: list[tuple[str, str]] = []
    for kind in ("quoted", "version", "file", "column", "channel"):
        olds = [v for k, v in stored if k == kind]
        news = [v for k, v in wanted if k == kind]
        for i, old in enumerate(olds):
            if i < len(news):
                if news[i] != old:
                    pairs.append((old, news[i]))
            elif _mentions(document, old):
                report.unfilled.append(old)
    if not pairs:
        return document, report
    patterns = [
        (re.compile(rf"(?<![\w.-]){re.escape(old)}(?![\w-])(?!\.\w)"), old, new)
        for old, new in pairs
    ]
    used: set[tuple[str, str]] = set()

    def swap(value: Any) -> Any:
        if isinstance(value, str):
            for pattern, old, new in patterns:
                value, count = pattern.subn(new.replace("\\", "\\\\"), value)
                if count:
                    used.add((old, new))
            return value
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    result = swap(document)
    report.substituted = [p for p in pairs if p in used]
    report.changes = _param_changes(document, result, report.substituted)
    return result, report


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _param_changes(before: Any, after: Any, pairs: list[tuple[str, str]]) -> list[ParamChange]:
    """The step parameters (main and rollback) that differ after substitution, each with its pair."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    changes = []
    for section in ("steps", "rollback"):
        old_steps, new_steps = before.get(section), after.get(section)
        if not isinstance(old_steps, list) or not isinstance(new_steps, list):
            continue
        for position, (old_step, new_step) in enumerate(zip(old_steps, new_steps, strict=False)):
            if not isinstance(old_step, dict) or not isinstance(old_step.get("params"), dict):
                continue
            # Rollback steps have no id: the run names them rollback-1, rollback-2, ...
            key = old_step.get("id") if section == "steps" else f"rollback-{position + 1}"
            for name, old_value in old_step["params"].items():
                new_value = new_step["params"].get(name)
                if new_value == old_value:
                    continue
                was, now = _text(old_value), _text(new_value)
                for replaced, task_value in pairs:
                    if _mentions(old_value, replaced) and task_value in now:
                        changes.append(ParamChange(f"{key}.{name}", task_value, replaced, was, now))
    return changes


def _mentions(document: Any, value: str) -> bool:
    if isinstance(document, str):
        return value in document
    if isinstance(document, dict):
        return any(_mentions(v, value) for v in document.values())
    if isinstance(document, list):
        return any(_mentions(v, value) for v in document)
    return False

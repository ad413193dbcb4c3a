"""Resource lock keys: templates such as ``env:{{ params.environment }}``, checked and rendered.

A tool or a plan step declares ``locks``; the executor renders each template over
the step's params (after references are resolved) and takes the keys in sorted
order, so two steps needing the same keys can never wait on each other in a
circle. Only ``{{ params.<path> }}`` placeholders are allowed: a key must not
depend on anything but what the step is called with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MAX_KEY_LENGTH = 200
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_PARAM_PATH = re.compile(r"\s*params((?:\.[A-Za-z0-9_-]+)+)\s*")


class LockKeyError(ValueError):
    """A lock template cannot be rendered over the step's params."""


def lock_template_problems(template: Any) -> list[str]:
    """What is wrong with one lock template (empty when it is fine)."""
    if not isinstance(template, str) or not template.strip():
        return ["a lock must be a non-empty string such as 'env:{{ params.environment }}'"]
    if len(template) > MAX_KEY_LENGTH:
        return [f"a lock is at most {MAX_KEY_LENGTH} characters long"]
    problems = []
    for match in _PLACEHOLDER.finditer(template):
        if _PARAM_PATH.fullmatch(match[1]) is None:
            problems.append(
                f"{match[0]!r} in lock {template!r}: only '{{{{ params.<name> }}}}' may be used"
            )
    rest = _PLACEHOLDER.sub("", template)
    if "{{" in rest or "}}" in rest:
        problems.append(f"lock {template!r} has an unclosed '{{{{ ... }}}}'")
    return problems


def locks_problems(locks: Any) -> list[str]:
    """What is wrong with a ``locks`` list (a tool's or a step's)."""
    if not isinstance(locks, list):
        return ["locks must be a list of strings"]
    return [problem for template in locks for problem in lock_template_problems(template)]


def template_params(template: str) -> list[str]:
    """The top-level parameter names a lock template reads."""
    names = []
    for match in _PLACEHOLDER.finditer(template):
        path = _PARAM_PATH.fullmatch(match[1])
        if path is not None:
            names.append(path[1].split(".")[1])
    return names


def render_lock_keys(templates: Iterable[str], params: Mapping[str, Any]) -> tuple[str, ...]:
    """The lock keys of a step, deduplicated and sorted (the order every step takes them in)."""
    return tuple(sorted({_render(template, params) for template in templates}))


def _render(template: str, params: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        path = _PARAM_PATH.fullmatch(match[1])
        if path is None:
            raise LockKeyError(f"lock {template!r}: {match[0]!r} is not a params reference")
        current: Any = params
        for name in path[1].split(".")[1:]:
            if not isinstance(current, Mapping) or name not in current:
                raise LockKeyError(f"lock {template!r}: params have no {path[1][1:]!r}")
            current = current[name]
        if isinstance(current, dict | list) or current is None:
            raise LockKeyError(f"lock {template!r}: {path[1][1:]!r} is not a plain value")
        return str(current).lower() if isinstance(current, bool) else str(current)

    key = _PLACEHOLDER.sub(value, template)
    if not key or len(key) > MAX_KEY_LENGTH:
        raise LockKeyError(f"lock {template!r} renders to a key of {len(key)} characters")
    return key

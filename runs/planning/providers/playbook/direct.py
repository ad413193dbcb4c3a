"""Direct calls offline: fill one tool's parameters from the words of a task.

A task one tool answers runs as a single call, with no plan to approve first, when
every required parameter without a default is stated in the task:
1. enum parameters take the allowed value the task names ("run the smoke tests");
2. a ``version`` takes the task's version, file-like parameters (``db``, ``path``,
   ``backup``) its file names in order, a ``*column`` parameter its ``table.column``,
   a ``channel`` its ``#channel``; text parameters take quoted text;
3. anything else keeps its default, or is reported missing.

A value the task names is given to one parameter only, however often the task repeats
it: "Back up prod.db; make a backup of prod.db" fills ``db``, not ``path`` as well (the
backup would overwrite the database), so ``path`` keeps the tool's own default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from runs.planning.retrieval.text import VALUE

_FILE_PARAMS = ("db", "path", "backup", "file")
_TEXT_PARAMS = ("message", "text", "query")


@dataclass
class Filled:
    params: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    # How each parameter was filled: "from the task" or "default".
    sources: dict[str, str] = field(default_factory=dict)


def _values(text: str) -> dict[str, list[str]]:
    """The distinct values ``text`` names, by kind, in order of first mention."""
    found: dict[str, list[str]] = {}
    for m in VALUE.finditer(text):
        kind = m.lastgroup or ""
        value = m.group(kind)
        value = value[1:-1] if kind == "quoted" else value
        if value not in found.setdefault(kind, []):
            found[kind].append(value)
    return found


def _enum_choice(enum: list[Any], words: set[str]) -> Any:
    named = [v for v in enum if isinstance(v, str) and v.lower() in words]
    return named[0] if len(named) == 1 else None


def fill_params(task: str, schema: dict[str, Any]) -> Filled:
    """The parameters of a call ``task`` states (see the module docstring)."""
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    values = _values(task)
    words = set(re.findall(r"[a-z0-9_]+", task.lower()))
    filled = Filled()

    def take(kind: str) -> str | None:
        # Each value goes to one parameter: the next parameter of its kind takes the next.
        left = values.get(kind)
        return left.pop(0) if left else None

    for name, prop in properties.items():
        value: Any = None
        if isinstance(prop.get("enum"), list):
            value = _enum_choice(prop["enum"], words)
        elif name == "version":
            value = take("version")
        elif name in _FILE_PARAMS:
            value = take("file")
        elif name.endswith("column"):
            value = take("column")
        elif name == "channel":
            value = take("channel")
        elif name in _TEXT_PARAMS:
            value = take("quoted")
        if value is not None:
            filled.params[name] = value
            filled.sources[name] = "from the task"
        elif "default" in prop:
            filled.sources[name] = "default"
        elif name in required:
            filled.missing.append(name)
    return filled

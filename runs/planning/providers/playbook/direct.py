"""Direct calls offline: fill one tool's parameters from the words of a task.

A task one tool answers runs as a single call, with no plan to approve first, when
every required parameter without a default is stated in the task:
1. enum parameters take the allowed value the task names ("run the smoke tests");
2. a ``version`` takes the task's version, file-like parameters (``db``, ``path``,
   ``backup``) its file names in order, a ``*column`` parameter its ``table.column``,
   a ``channel`` its ``#channel``; text parameters take quoted text;
3. anything else keeps its default, or is reported missing.
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
    found: dict[str, list[str]] = {}
    for m in VALUE.finditer(text):
        kind = m.lastgroup or ""
        value = m.group(kind)
        found.setdefault(kind, []).append(value[1:-1] if kind == "quoted" else value)
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
    files = list(values.get("file", []))
    filled = Filled()
    for name, prop in properties.items():
        value: Any = None
        if isinstance(prop.get("enum"), list):
            value = _enum_choice(prop["enum"], words)
        elif name == "version" and values.get("version"):
            value = values["version"][0]
        elif name in _FILE_PARAMS and files:
            value = files.pop(0)
        elif name.endswith("column") and values.get("column"):
            value = values["column"][0]
        elif name == "channel" and values.get("channel"):
            value = values["channel"][0]
        elif name in _TEXT_PARAMS and values.get("quoted"):
            value = values["quoted"][0]
        if value is not None:
            filled.params[name] = value
            filled.sources[name] = "from the task"
        elif "default" in prop:
            filled.sources[name] = "default"
        elif name in required:
            filled.missing.append(name)
    return filled

"""References from a step's params to earlier steps' outputs: ``{{ steps.<id>.result.<path> }}``.

The path walks dict keys and list indexes (``items.0.name`` or ``items[0].name``).
A string that is exactly one reference is replaced by the referenced value with
its JSON type kept; a reference inside a longer string is interpolated as text.
Anything else between ``{{ }}`` is not ours and is left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

REFERENCE_RE = re.compile(
    r"\{\{\s*steps\.(?P<step>[A-Za-z0-9_][A-Za-z0-9_-]*)\.result"
    r"(?P<path>(?:\.[^\s.\[\]{}]+|\[\d+\])*)\s*\}\}"
)
_SEGMENT_RE = re.compile(r"\.([^\s.\[\]{}]+)|\[(\d+)\]")
# A tuple, not ``str | dict | list``: that expression builds a union object at every call,
# and isinstance checks a union more slowly (5% of validating a 1000-step plan).
_MAY_HOLD_REFERENCES = (str, dict, list)
_MAX_KEYS_SHOWN = 12


@dataclass(frozen=True)
class Reference:
    """One reference found in params; ``location`` is where, e.g. ``db`` or ``files[1]``."""

    step: str
    path: tuple[str, ...]
    location: str

    @property
    def expression(self) -> str:
        return _expression(self.step, self.path)


class ReferenceResolutionError(ValueError):
    """A reference points at a step without a result, or at a path its result lacks."""


def is_whole_reference(value: Any) -> bool:
    """True for a string that is exactly one reference (its value keeps its JSON type)."""
    return type(value) is str and "{{" in value and REFERENCE_RE.fullmatch(value) is not None


def find_references(params: Any) -> list[Reference]:
    """Every reference inside ``params`` (nested dicts, lists and strings), in document order."""
    found: list[Reference] = []
    _find(params, [], found)
    return found


def _find(value: Any, trail: list[str | int], found: list[Reference]) -> None:
    if isinstance(value, str):
        if "{{" in value:
            for m in REFERENCE_RE.finditer(value):
                found.append(Reference(m["step"], _split_path(m["path"]), format_location(trail)))
    elif isinstance(value, dict):
        for key, item in value.items():
            # Scalars other than strings cannot hold references: skip the push/pop.
            if isinstance(item, _MAY_HOLD_REFERENCES):
                trail.append(str(key))
                _find(item, trail, found)
                trail.pop()
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, _MAY_HOLD_REFERENCES):
                trail.append(i)
                _find(item, trail, found)
                trail.pop()


def resolve_references(params: Any, results: Mapping[str, Any], *, step: str = "") -> Any:
    """Return a copy of ``params`` with every reference replaced by the value it points to.

    ``results`` maps step ids to their results; ``step`` (the step being started)
    only makes error messages say whose params failed. Raises
    ``ReferenceResolutionError`` when a referenced step has no result or a path
    does not exist.
    """
    return _resolve(params, results, step, [])


def _resolve(value: Any, results: Mapping[str, Any], step: str, trail: list[str | int]) -> Any:
    if isinstance(value, str):
        if "{{" not in value:
            return value
        whole = REFERENCE_RE.fullmatch(value)
        if whole is not None:
            return _copy_json(_lookup(whole, results, step, trail))
        return REFERENCE_RE.sub(lambda m: _as_text(_lookup(m, results, step, trail)), value)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            trail.append(str(key))
            out[key] = _resolve(item, results, step, trail)
            trail.pop()
        return out
    if isinstance(value, list):
        items: list[Any] = []
        for i, item in enumerate(value):
            trail.append(i)
            items.append(_resolve(item, results, step, trail))
            trail.pop()
        return items
    return value


def _lookup(
    match: re.Match[str], results: Mapping[str, Any], step: str, trail: list[str | int]
) -> Any:
    target = match["step"]
    path = _split_path(match["path"])

    def fail(problem: str) -> ReferenceResolutionError:
        where = format_location(trail)
        who = f"step '{step}' " if step else ""
        param = f"param '{where}'" if where else "params"
        return ReferenceResolutionError(f"{who}{param}: {problem}")

    if target not in results:
        raise fail(f"steps.{target}.result is not available: step '{target}' has no result")
    value = results[target]
    for depth, segment in enumerate(path):
        walked = _expression(target, path[:depth])
        if isinstance(value, dict):
            if segment not in value:
                raise fail(f"{walked} has no key '{segment}' ({_describe_keys(value)})")
            value = value[segment]
        elif isinstance(value, list):
            if not segment.isdigit():
                raise fail(f"{walked} is a list, so '{segment}' is not a valid index")
            index = int(segment)
            if index >= len(value):
                count = f"{len(value)} item{'' if len(value) == 1 else 's'}"
                raise fail(f"{walked} has no index {index} (it has {count})")
            value = value[index]
        else:
            raise fail(f"{walked} is {_json_kind(value)}, not an object or a list")
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"


def _describe_keys(value: dict[Any, Any]) -> str:
    if not value:
        return "it is empty"
    keys = [str(k) for k in value]
    shown = ", ".join(keys[:_MAX_KEYS_SHOWN])
    more = f", and {len(keys) - _MAX_KEYS_SHOWN} more" if len(keys) > _MAX_KEYS_SHOWN else ""
    return f"keys: {shown}{more}"


def _split_path(path: str) -> tuple[str, ...]:
    if not path:
        return ()
    if "[" not in path:
        return tuple(path[1:].split("."))
    return tuple(key or index for key, index in _SEGMENT_RE.findall(path))


def _expression(step: str, path: tuple[str, ...]) -> str:
    return ".".join(("steps", step, "result", *path))


def format_location(trail: list[str | int] | tuple[str | int, ...]) -> str:
    """``["files", 1, "name"]`` -> ``files[1].name``: the path notation used in messages."""
    out = ""
    for part in trail:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _copy_json(value: Any) -> Any:
    """Copy containers so a tool that mutates its params cannot alter another step's result."""
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value

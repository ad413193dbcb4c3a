"""JSON and YAML text parsed with limits, and the one rule for values a database can store.

Every entry point that reads a document from text (the API's request bodies, plan
text from a form, a review edit, the command line or a model's answer, tools.yaml)
parses it here, so none can be made to fail with something other than
``TextDataError``: the text is bounded in size, nesting depth, integer digits
and (for YAML) alias expansion, and Python's own limits (the 4,300-digit
int conversion, the recursion limit, libyaml's C recursion) are never reached.

``unstorable`` says why a parsed value cannot be stored as JSON by SQLite and
PostgreSQL (NUL characters, lone surrogates, NaN/Infinity, integers beyond 64
bits, non-text keys); ``storable_copy`` escapes such values in a copy for records
that must be stored whatever they hold (a model's raw answer).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import yaml

MAX_CHARS = 5_000_000  # characters of one document
MAX_DEPTH = 100  # nesting of lists and objects
MAX_INT_DIGITS = 100  # digits of one integer literal (storable ones have at most 19)
MAX_NODES = 2_000_000  # YAML values after expanding aliases (a "billion laughs" stops here)
INT_MIN, INT_MAX = -(2**63), 2**63 - 1  # what SQLite integers and PostgreSQL bigint hold


class TextDataError(ValueError):
    """Text that is not a usable document; ``line``/``column`` (1-based) when known."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        where = f"line {line}, column {column}: " if line is not None else ""
        super().__init__(f"{where}{message}")
        self.message = message
        self.line = line
        self.column = column


# -- JSON --------------------------------------------------------------------------------
def _json_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise TextDataError(f"an integer has more than {MAX_INT_DIGITS} digits")
    return int(digits)


def _json_constant(name: str) -> Any:
    raise TextDataError(f"{name} is not a number JSON allows")


def parse_json(text: str | bytes, *, sized: bool = True, max_depth: int = MAX_DEPTH) -> Any:
    """JSON text as data; ``TextDataError`` for bad syntax or a document beyond the limits.

    A document that wraps stored values (a run snapshot) passes its own limits: no size
    limit (``sized=False``) for a file an operator imports, and the depth of what it
    wraps plus its own (``max_depth``).
    """
    if sized and len(text) > MAX_CHARS:
        raise TextDataError(f"the document is longer than {MAX_CHARS:,} characters")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TextDataError(f"the text is not UTF-8 ({exc.reason})") from None
    try:
        data = json.loads(text, parse_int=_json_int, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise TextDataError(f"invalid JSON: {exc.msg}", line=exc.lineno, column=exc.colno) from None
    except RecursionError:
        raise TextDataError(f"the document is nested more than {max_depth} levels deep") from None
    _check_depth(data, max_depth)
    return data


# -- YAML --------------------------------------------------------------------------------
# libyaml's loader when PyYAML was built with it; the pure-Python one otherwise.
if TYPE_CHECKING:
    _Loader = yaml.SafeLoader
else:
    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_INT_CHARS = re.compile(r"[0-9a-fA-F]")


class _DataLoader(_Loader):
    """Safe YAML without timestamps (``2024-05-01`` stays text, so JSON can hold it)."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _Loader.yaml_implicit_resolvers.items()
    }

    def construct_yaml_int(self, node: Any) -> int:
        if len(_INT_CHARS.findall(str(node.value))) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer has more than {MAX_INT_DIGITS} digits", node.start_mark
            )
        return int(super().construct_yaml_int(node))


_DataLoader.add_constructor("tag:yaml.org,2002:int", _DataLoader.construct_yaml_int)

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _check_yaml_shape(text: str) -> None:
    """Depth and alias expansion from the parser's events, before anything is built.

    libyaml builds nested collections by C recursion (a deep enough document
    crashes the process), and an alias is a shared object that expands on every
    later walk; both are bounded here in one pass without recursion.
    """
    depth = 0
    expanded = 0  # values so far with every alias counted at its full size
    starts: list[tuple[str | None, int]] = []  # open collections: (anchor, expanded at start)
    sizes: dict[str, int] = {}
    for event in yaml.parse(text, Loader=_DataLoader):
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_DEPTH:
                mark = event.start_mark
                raise TextDataError(
                    f"the document is nested more than {MAX_DEPTH} levels deep",
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            starts.append((event.anchor, expanded))
            expanded += 1
        elif isinstance(event, _CLOSE):
            depth -= 1
            anchor, start = starts.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start
        elif isinstance(event, yaml.AliasEvent):
            expanded += sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        if expanded > MAX_NODES:
            raise TextDataError(f"the document expands to more than {MAX_NODES:,} values")


def parse_yaml(text: str) -> Any:
    """YAML text as data; ``TextDataError`` for bad syntax or a document beyond the limits."""
    if len(text) > MAX_CHARS:
        raise TextDataError(f"the document is longer than {MAX_CHARS:,} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # libyaml reads UTF-8 only
        raise TextDataError(
            f"the text may not contain lone surrogates (character {exc.start + 1})"
        ) from None
    try:
        _check_yaml_shape(text)
        return yaml.load(text, Loader=_DataLoader)  # _DataLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text) from None
    except RecursionError:  # the pure-Python loader's own recursion, should libyaml be missing
        raise TextDataError(f"the document is nested more than {MAX_DEPTH} levels deep") from None


def _yaml_error(exc: yaml.YAMLError, text: str) -> TextDataError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"invalid YAML: {context + ', ' if context else ''}{problem}"
    if mark is None:
        return TextDataError(message)
    lines = text.splitlines()
    if mark.line < len(lines) and "{{" in lines[mark.line]:
        # Unquoted ``{{ ... }}`` is a YAML flow mapping, the classic way a reference breaks.
        message += " (put values containing {{ ... }} references in quotes)"
    return TextDataError(message, line=mark.line + 1, column=mark.column + 1)


def parse_json_or_yaml(text: str) -> Any:
    """JSON when the text looks like JSON and parses as such, YAML otherwise.

    YAML rejects the tab indentation JSON allows, and JSON errors point at the
    right place, so JSON-looking text is tried as JSON first; when YAML refuses
    it too, the JSON error is the one reported.
    """
    if len(text) > MAX_CHARS:
        raise TextDataError(f"the document is longer than {MAX_CHARS:,} characters")
    if text.lstrip()[:1] not in ("{", "["):
        return parse_yaml(text)
    try:
        return parse_json(text)
    except TextDataError as json_error:
        if not json_error.message.startswith("invalid JSON"):
            raise  # valid JSON beyond a limit: YAML would not do better
        try:
            return parse_yaml(text)
        except TextDataError:
            raise json_error from None


# -- what can be stored ------------------------------------------------------------------
def _check_depth(data: Any, max_depth: int = MAX_DEPTH) -> None:
    stack = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = item.values()
        elif not isinstance(item, list):
            continue
        if depth > max_depth:
            raise TextDataError(f"the document is nested more than {max_depth} levels deep")
        stack.extend((sub, depth + 1) for sub in item if isinstance(sub, dict | list))


def _scalar_problem(item: Any) -> str | None:
    if isinstance(item, str):
        if "\x00" in item:
            return "text may not contain NUL characters"
        try:
            item.encode("utf-8")
        except UnicodeEncodeError:
            return "text may not contain lone surrogates"
    elif isinstance(item, bool) or item is None:
        return None
    elif isinstance(item, int):
        if not INT_MIN <= item <= INT_MAX:
            return "integers must fit in 64 bits (-2^63 to 2^63-1)"
    elif isinstance(item, float):
        if not math.isfinite(item):
            return f"{item} is not a finite number"
    else:
        return f"{type(item).__name__} values are not allowed (quote it as text)"
    return None


def unstorable(
    value: Any, *, path: str = "", max_depth: int = MAX_DEPTH, numbers: bool = True
) -> tuple[str, str] | None:
    """(path, reason) of the first value SQLite or PostgreSQL JSON cannot store, or None."""
    return next(unstorable_values(value, path=path, max_depth=max_depth, numbers=numbers), None)


def unstorable_values(
    value: Any, *, path: str = "", max_depth: int = MAX_DEPTH, numbers: bool = True
) -> Iterator[tuple[str, str]]:
    """(path, reason) of every value SQLite or PostgreSQL JSON cannot store, in document order.

    Iterative, so no document is too deep to be checked; paths are dotted
    (``steps[2].params.db``). A collection nested too deep is one problem, not looked into.
    ``numbers=False`` looks at text only: a run snapshot carries the numbers its run stored.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, dict | list | tuple) and depth > max_depth:
            yield where, f"nested more than {max_depth} levels deep"
        elif isinstance(item, dict):
            subs = []
            for key, sub in item.items():
                if not isinstance(key, str):
                    yield where, f"key {_short(key)} must be text (quote it)"
                    continue
                problem = _scalar_problem(key)
                if problem:
                    yield where, f"a key: {problem}"
                    continue
                subs.append((sub, f"{where}.{key}" if where else key, depth + 1))
            stack.extend(reversed(subs))
        elif isinstance(item, list | tuple):
            stack.extend(
                (item[i], f"{where}[{i}]", depth + 1) for i in range(len(item) - 1, -1, -1)
            )
        elif numbers or isinstance(item, str):
            problem = _scalar_problem(item)
            if problem:
                yield where, problem


def _short(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return "(an integer)" if abs(value) > 10**30 else str(value)
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def storable_text(text: str) -> str:
    """``text`` with NUL and lone surrogates escaped (``\\x00``, ``\\ud800``); else unchanged."""
    if "\x00" not in text:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            pass
        else:
            return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def storable_copy(value: Any) -> Any:
    """A copy of JSON-like ``value`` that always stores: bad text escaped, bad numbers as text."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(k)): storable_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable_copy(v) for v in value]
    if _scalar_problem(value) is None:
        return value
    if isinstance(value, int):
        return f"(an integer of {value.bit_length()} bits)"
    return storable_text(str(value))

"""Params against a tool's JSON Schema (Draft 2020-12): a compiled, cached check.

Each distinct schema is compiled once and shared: a plain-Python predicate for
the common keywords (the fast "valid?" answer), jsonschema for everything else
and for the messages. With ``allow_references`` a whole step-output reference
(``"{{ steps.a.result.n }}"``) satisfies any non-false schema: its value is known
only at run time, when the resolved params are checked again without it.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable, Iterator, Mapping, Sized
from dataclasses import dataclass
from typing import Any, NamedTuple

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from runs.planning.references import format_location, is_whole_reference

Predicate = Callable[[Any], bool]


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """One schema violation: where inside params, and jsonschema's message.

    ``missing`` names the absent param of a ``required`` failure; ``unexpected`` and
    ``accepted`` list the extra and the declared names of an ``additionalProperties:
    false`` failure. They let callers write friendlier sentences than jsonschema's.
    """

    location: tuple[str | int, ...]
    message: str
    missing: str | None = None
    unexpected: tuple[str, ...] = ()
    accepted: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        """``files[1].name``; "" for the params as a whole."""
        return format_location(self.location)


class ParamsSchemaError(ValueError):
    """The tool's parameters schema is itself not a valid JSON Schema."""


class ParamsCacheInfo(NamedTuple):
    hits: int
    misses: int
    size: int


def params_problems(
    schema: Mapping[str, Any], params: Any, *, allow_references: bool
) -> list[ParamProblem]:
    """Every way ``params`` breaks ``schema`` ([] when valid), via the cached compiled check.

    Raises ``ParamsSchemaError`` when ``schema`` is not a valid JSON Schema.
    """
    check = params_check(schema)
    if check is None:
        return []
    if check.schema_error is not None:
        raise ParamsSchemaError(f"the parameters schema is invalid: {check.schema_error}")
    if check.is_valid(params, allow_references=allow_references):
        return []
    return check.problems(params, allow_references=allow_references)


def params_check(schema: Any) -> ParamsCheck | None:
    """The shared compiled check for ``schema``; None when there is nothing to check."""
    global _hits, _misses
    if not schema:
        return None
    key = json.dumps(schema, sort_keys=True, default=str)
    try:
        check = _CHECKS[key]
    except KeyError:
        pass
    else:
        _hits += 1
        return check
    _misses += 1
    if len(_CHECKS) >= _CHECKS_MAX:  # tool schemas are few; this only guards against churn
        _CHECKS.clear()
    # Compile a private copy, so a caller mutating its dict cannot desync it from its key.
    check = _CHECKS[key] = ParamsCheck(json.loads(key))
    return check


def params_cache_info() -> ParamsCacheInfo:
    """Hits, misses and size of the compiled-check cache (for tests and diagnostics)."""
    return ParamsCacheInfo(_hits, _misses, len(_CHECKS))


class ParamsCheck:
    """One schema, compiled once: a fast predicate where possible, jsonschema for messages.

    ``schema_error`` is jsonschema's complaint when the schema itself is invalid;
    the other methods must not be called then.
    """

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema_error: str | None = None
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            self.schema_error = exc.message
            return
        self.schema = schema
        self.validator = Draft202012Validator(schema)
        self.fast = _compile(schema, refs=False)
        self._ref_validator: Any = None
        self._fast_refs: Predicate | None = None

    def is_valid(self, params: Any, *, allow_references: bool) -> bool:
        return self.predicate(allow_references=allow_references)(params)

    def predicate(self, *, allow_references: bool) -> Predicate:
        """``is_valid`` as one callable, for callers that check many params against one schema."""
        if not allow_references:
            fast, validator = self.fast, self.validator
        else:
            fast, validator = self._with_refs()
        return fast if fast is not None else validator.is_valid

    def problems(self, params: Any, *, allow_references: bool) -> list[ParamProblem]:
        """One problem per schema violation, in jsonschema's order; [] when valid."""
        validator = self._with_refs()[1] if allow_references else self.validator
        return [_problem(error) for error in validator.iter_errors(params)]

    def _with_refs(self) -> tuple[Predicate | None, Any]:
        if self._ref_validator is None:
            self._fast_refs = _compile(self.schema, refs=True)
            self._ref_validator = _ReferenceAwareValidator(self.schema)
        return self._fast_refs, self._ref_validator


_CHECKS: dict[str, ParamsCheck] = {}
_CHECKS_MAX = 512
_hits = 0
_misses = 0


def _problem(error: jsonschema.ValidationError) -> ParamProblem:
    location = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        for name in error.validator_value:
            if name not in instance and error.message == f"{name!r} is a required property":
                return ParamProblem(location, error.message, missing=name)
    if (
        error.validator == "additionalProperties"
        and error.validator_value is False
        and isinstance(instance, dict)
        and isinstance(error.schema, dict)
        and "patternProperties" not in error.schema
    ):
        known = error.schema.get("properties", {})
        return ParamProblem(
            location,
            error.message,
            unexpected=tuple(k for k in instance if k not in known),
            accepted=tuple(known),
        )
    return ParamProblem(location, error.message)


# -- whole references -------------------------------------------------------------------
def _skip_whole_references(
    keyword: Callable[..., Any],
) -> Callable[..., Iterator[jsonschema.ValidationError]]:
    def check(
        validator: Any, value: Any, instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if is_whole_reference(instance):
            return
        errors = keyword(validator, value, instance, schema)
        if errors:
            yield from errors

    return check


# A whole reference stands for a value known only at run time: it satisfies any
# (non-false) schema here and is checked again after resolution.
_ReferenceAwareValidator = jsonschema.validators.extend(
    Draft202012Validator,
    {name: _skip_whole_references(fn) for name, fn in Draft202012Validator.VALIDATORS.items()},
)


# -- the fast path ----------------------------------------------------------------------
# jsonschema costs ~10 µs per call even for a two-keyword schema, which is most of
# a 1000-step validation. Schemas made only of the keywords below are compiled to
# plain predicates with exactly jsonschema's semantics; any other keyword falls
# back to jsonschema. A predicate only answers "valid?"; on "no", jsonschema
# writes the messages. So a predicate must never accept what jsonschema rejects;
# the tests compare the two on a grid of schemas and values.
_FAST_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "format",  # not asserted: our validators have no format checker
    }
)
_KEYWORDS = frozenset(Draft202012Validator.VALIDATORS)


def _is_number(x: Any) -> bool:
    kind = type(x)
    if kind is float or kind is int:  # the usual case: an ABC check costs ten times more
        return True
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES: dict[str, Predicate] = {
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
}


def _always(x: Any) -> bool:
    return True


def _never(x: Any) -> bool:
    return False


def _compile(schema: Any, *, refs: bool) -> Predicate | None:
    """A predicate equivalent to ``Draft202012Validator(schema).is_valid``, or None."""
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        return None
    if any(k in _KEYWORDS and k not in _FAST_KEYWORDS for k in schema):
        return None
    checks: list[Predicate] = []

    def sub(s: Any) -> Predicate:
        compiled = _compile(s, refs=refs)
        if compiled is None:
            raise _Unsupported
        return compiled

    try:
        checks.extend(_compile_keywords(schema, sub))
    except _Unsupported:
        return None
    base = _always if not checks else checks[0] if len(checks) == 1 else _all_of(tuple(checks))
    if refs:
        return _or_whole_reference(base)
    return base


def _all_of(checks: tuple[Predicate, ...]) -> Predicate:
    def check(x: Any) -> bool:
        # Plain loops: a generator inside all() costs more than the checks themselves.
        for one in checks:  # noqa: SIM110
            if not one(x):
                return False
        return True

    return check


def _or_whole_reference(inner: Predicate) -> Predicate:
    return lambda x: is_whole_reference(x) or inner(x)


class _Unsupported(Exception):
    pass


def _compile_keywords(schema: dict[str, Any], sub: Callable[[Any], Predicate]) -> list[Predicate]:
    checks: list[Predicate] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not all(isinstance(n, str) and n in _TYPES for n in names):
            raise _Unsupported
        preds = tuple(_TYPES[n] for n in names)
        checks.append(preds[0] if len(preds) == 1 else lambda x: any(p(x) for p in preds))
    if "enum" in schema:
        values = schema["enum"]
        # jsonschema's equality keeps True != 1; for strings it is plain ==.
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _Unsupported
        allowed = frozenset(values)
        checks.append(lambda x: isinstance(x, str) and x in allowed)
    if "const" in schema:
        const = schema["const"]
        if not isinstance(const, str):
            raise _Unsupported
        checks.append(lambda x: isinstance(x, str) and x == const)
    for keyword, compare in (
        ("minimum", lambda x, m: x >= m),
        ("maximum", lambda x, m: x <= m),
        ("exclusiveMinimum", lambda x, m: x > m),
        ("exclusiveMaximum", lambda x, m: x < m),
    ):
        if keyword in schema:
            checks.append(_number_check(schema[keyword], compare))
    for keyword, kind, at_least in (
        ("minLength", str, True),
        ("maxLength", str, False),
        ("minItems", list, True),
        ("maxItems", list, False),
        ("minProperties", dict, True),
        ("maxProperties", dict, False),
    ):
        if keyword in schema:
            checks.append(_size_check(schema[keyword], kind, at_least))
    if "pattern" in schema:
        regex = re.compile(schema["pattern"])
        checks.append(lambda x: not isinstance(x, str) or regex.search(x) is not None)
    if "required" in schema:
        required = tuple(schema["required"])
        checks.append(lambda x: not isinstance(x, dict) or all(r in x for r in required))
    if "properties" in schema:
        props = tuple((name, sub(s)) for name, s in schema["properties"].items())
        checks.append(_properties_check(props))
    if "additionalProperties" in schema:
        known = frozenset(schema.get("properties", {}))
        extra = sub(schema["additionalProperties"])
        checks.append(
            lambda x: (
                not isinstance(x, dict) or all(extra(v) for k, v in x.items() if k not in known)
            )
        )
    if "items" in schema:
        item = sub(schema["items"])
        checks.append(lambda x: not isinstance(x, list) or all(item(v) for v in x))
    if "allOf" in schema:
        parts = tuple(sub(s) for s in schema["allOf"])
        checks.append(lambda x: all(p(x) for p in parts))
    if "anyOf" in schema:
        options = tuple(sub(s) for s in schema["anyOf"])
        checks.append(lambda x: any(p(x) for p in options))
    if "oneOf" in schema:
        choices = tuple(sub(s) for s in schema["oneOf"])
        checks.append(lambda x: sum(1 for p in choices if p(x)) == 1)
    if "not" in schema:
        negated = sub(schema["not"])
        checks.append(lambda x: not negated(x))
    return checks


def _number_check(limit: Any, compare: Callable[[Any, Any], bool]) -> Predicate:
    if not _is_number(limit):
        raise _Unsupported
    return lambda x: not _is_number(x) or compare(x, limit)


def _size_check(limit: Any, kind: type[Sized], at_least: bool) -> Predicate:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise _Unsupported
    if at_least:
        return lambda x: not isinstance(x, kind) or len(x) >= limit
    return lambda x: not isinstance(x, kind) or len(x) <= limit


def _properties_check(props: tuple[tuple[str, Predicate], ...]) -> Predicate:
    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name, pred in props:  # noqa: SIM110 - see _all_of
            if name in x and not pred(x[name]):
                return False
        return True

    return check

"""The compiled, cached params check against a tool's JSON Schema (no database)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from runs.planning import params
from runs.planning.params import (
    ParamProblem,
    ParamsSchemaError,
    params_cache_info,
    params_check,
    params_problems,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"db": {"type": "string"}, "keep": {"type": "integer", "minimum": 1}},
    "required": ["db"],
    "additionalProperties": False,
}


# -- params_problems ---------------------------------------------------------------------------
def test_valid_params_have_no_problems() -> None:
    assert params_problems(SCHEMA, {"db": "main", "keep": 2}, allow_references=False) == []


def test_a_whole_reference_is_allowed_only_when_references_are() -> None:
    value = {"db": "main", "keep": "{{ steps.a.result.n }}"}
    assert params_problems(SCHEMA, value, allow_references=True) == []
    [problem] = params_problems(SCHEMA, value, allow_references=False)
    assert (problem.path, problem.location) == ("keep", ("keep",))
    assert problem.message == "'{{ steps.a.result.n }}' is not of type 'integer'"


def test_a_reference_inside_a_longer_string_is_checked_as_that_string() -> None:
    value = {"db": "main", "keep": "n={{ steps.a.result.n }}"}
    [problem] = params_problems(SCHEMA, value, allow_references=True)
    assert problem.path == "keep"


def test_problems_keep_jsonschema_wording_and_name_missing_and_extra_params() -> None:
    problems = params_problems(SCHEMA, {"keep": 0, "colour": "red"}, allow_references=False)
    by_message = {p.message: p for p in problems}
    assert set(by_message) == {
        "'db' is a required property",
        "0 is less than the minimum of 1",
        "Additional properties are not allowed ('colour' was unexpected)",
    }
    assert by_message["'db' is a required property"].missing == "db"
    extra = by_message["Additional properties are not allowed ('colour' was unexpected)"]
    assert (extra.path, extra.unexpected, extra.accepted) == ("", ("colour",), ("db", "keep"))
    assert by_message["0 is less than the minimum of 1"].path == "keep"


def test_a_problem_path_uses_the_message_notation_for_list_items() -> None:
    schema = {
        "type": "object",
        "properties": {"files": {"type": "array", "items": {"type": "string"}}},
    }
    [problem] = params_problems(schema, {"files": ["a", 2]}, allow_references=False)
    assert problem == ParamProblem(("files", 1), "2 is not of type 'string'")
    assert problem.path == "files[1]"


def test_an_empty_schema_accepts_anything() -> None:
    assert params_problems({}, {"anything": [1, None]}, allow_references=False) == []


def test_an_invalid_schema_is_an_error_not_a_params_problem() -> None:
    with pytest.raises(ParamsSchemaError, match="parameters schema is invalid"):
        params_problems({"type": "objekt"}, {}, allow_references=False)


# -- the cache ---------------------------------------------------------------------------------
def test_the_same_schema_is_compiled_once_and_then_served_from_the_cache() -> None:
    schema = {"type": "object", "properties": {"cache_probe": {"type": "integer"}}}
    before = params_cache_info()
    params_problems(schema, {"cache_probe": 1}, allow_references=False)
    params_problems(schema, {"cache_probe": "x"}, allow_references=False)
    after = params_cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert params_check(schema) is params_check(schema)


def test_equal_schemas_share_one_compiled_check() -> None:
    one = params_check({"type": "object", "properties": {"n": {"type": "integer"}}})
    two = params_check({"properties": {"n": {"type": "integer"}}, "type": "object"})
    assert one is two


def test_mutating_a_schema_after_compiling_it_does_not_change_its_check() -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"m": {"type": "integer"}}}
    check = params_check(schema)
    schema["properties"]["m"]["type"] = "string"
    assert check is not None and check.is_valid({"m": 1}, allow_references=False)
    assert params_check(schema) is not check


# -- the fast params predicate must agree with jsonschema exactly ----------------------------
SCHEMAS: list[Any] = [
    {},
    True,
    False,
    {"type": "object", "properties": {"n": {"type": "integer"}}},
    {"type": ["string", "null"], "minLength": 2, "maxLength": 4, "pattern": "^a"},
    {"type": "number", "minimum": 0, "exclusiveMaximum": 10},
    {"enum": ["x", "y"]},
    {"const": "x"},
    {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 2},
    {"type": "object", "required": ["a"], "additionalProperties": False, "properties": {"a": {}}},
    {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
    {"anyOf": [{"type": "integer"}, {"type": "null"}]},
    {"oneOf": [{"type": "integer"}, {"type": "number"}]},
    {"allOf": [{"type": "string"}, {"not": {"const": "no"}}]},
    {"type": "string", "format": "email"},
    {"properties": {"a": {"type": "boolean"}}, "title": "annotations are ignored"},
]
INSTANCES: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    1.0,
    2.5,
    -1,
    10,
    "",
    "a",
    "ab",
    "abcde",
    "x",
    "no",
    "{{ steps.a.result }}",
    [],
    [1],
    [1, 2, 3],
    ["a"],
    {},
    {"a": 1},
    {"n": 1},
    {"n": "1"},
    {"n": True},
    {"a": True, "b": "s"},
    {"a": "{{ steps.a.result }}", "b": "c", "c": "d"},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=range(len(SCHEMAS)))
def test_the_compiled_params_check_agrees_with_jsonschema(schema: Any) -> None:
    fast = params._compile(schema, refs=False)
    fast_refs = params._compile(schema, refs=True)
    assert fast is not None and fast_refs is not None
    slow = jsonschema.Draft202012Validator(schema)
    slow_refs = params._ReferenceAwareValidator(schema)
    for instance in INSTANCES:
        assert fast(instance) == slow.is_valid(instance), instance
        assert fast_refs(instance) == slow_refs.is_valid(instance), instance


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "#/$defs/x", "$defs": {"x": {}}},
        {"multipleOf": 2},
        {"enum": [1, True]},
        {"type": "array", "prefixItems": [{}]},
        {"properties": {"a": {"uniqueItems": True}}},
    ],
)
def test_keywords_outside_the_fast_subset_fall_back_to_jsonschema(schema: Any) -> None:
    assert params._compile(schema, refs=False) is None

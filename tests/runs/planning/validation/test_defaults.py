"""Parameter defaults: filled in from the tools' schemas at validation, in the document that is stored."""

from __future__ import annotations

from typing import Any

from runs.planning.validation import validate_plan
from runs.planning.validation.defaults import has_defaults, with_defaults
from runs.tools.base import ToolSpec

RUN_TESTS = {
    "type": "object",
    "properties": {
        "suite": {"type": "string", "enum": ["unit", "smoke"], "default": "unit"},
        "fail": {"type": "boolean", "default": False},
        "seconds": {"type": "number", "minimum": 0},
        "report": {
            "type": "object",
            "properties": {
                "format": {"type": "string", "default": "junit"},
                "path": {"type": "string"},
            },
        },
        "tags": {"type": "array", "default": ["fast"]},
    },
    "required": ["suite"],
    "additionalProperties": False,
}
TOOLS = {
    "run_tests": ToolSpec(name="run_tests", kind="shell", parameters_schema=RUN_TESTS),
    "notify": ToolSpec(name="notify", kind="python"),
}


def check(raw: Any) -> Any:
    return validate_plan(raw, tools=TOOLS, max_steps=50)


def test_a_missing_required_parameter_with_a_default_passes_with_the_default() -> None:
    result = check({"steps": [{"id": "1", "action": "run_tests", "params": {}}]})
    assert result.problems == []
    params = {"suite": "unit", "fail": False, "tags": ["fast"]}
    assert result.document.steps[0].params == params
    assert result.submitted == {"steps": [{"id": "1", "action": "run_tests", "params": params}]}


def test_given_values_and_explicit_nulls_are_kept() -> None:
    assert with_defaults(RUN_TESTS, {"suite": "smoke", "fail": None}) == {
        "suite": "smoke",
        "fail": None,
        "tags": ["fast"],
    }


def test_nested_object_properties_get_their_defaults_when_the_object_is_given() -> None:
    filled = with_defaults(RUN_TESTS, {"report": {"path": "out.xml"}})
    assert filled is not None
    assert filled["report"] == {"path": "out.xml", "format": "junit"}
    assert "report" not in (with_defaults(RUN_TESTS, {}) or {})  # no default of its own


def test_a_default_is_copied_so_steps_never_share_one_value() -> None:
    result = check(
        {
            "steps": [
                {"id": "a", "action": "run_tests"},
                {"id": "b", "action": "run_tests"},
            ]
        }
    )
    first, second = (s.params for s in result.document.steps)
    first["tags"].append("changed")
    assert second["tags"] == ["fast"] and RUN_TESTS["properties"]["tags"]["default"] == ["fast"]


def test_the_submitted_document_keeps_its_form_and_spelling() -> None:
    raw = [{"tool": "run_tests", "args": {"fail": True}}, {"tool": "notify"}]
    result = check(raw)
    assert result.problems == []
    assert result.submitted == [
        {"tool": "run_tests", "args": {"fail": True, "suite": "unit", "tags": ["fast"]}},
        {"tool": "notify"},
    ]
    assert raw[0]["args"] == {"fail": True}  # the caller's document is not changed


def test_rollback_steps_get_defaults_too_and_a_plan_without_any_is_returned_as_is() -> None:
    raw = {
        "steps": [{"id": "a", "action": "notify"}],
        "rollback": [{"action": "run_tests", "params": {"suite": "smoke"}}],
    }
    result = check(raw)
    assert result.document.rollback[0].params["fail"] is False
    assert result.submitted["rollback"][0]["params"]["tags"] == ["fast"]
    plain = {"steps": [{"id": "a", "action": "notify", "params": {"x": 1}}]}
    assert check(plain).submitted is plain


def test_a_default_that_breaks_the_schema_is_still_reported() -> None:
    tools = {
        "bad": ToolSpec(
            name="bad",
            kind="python",
            parameters_schema={
                "type": "object",
                "properties": {"n": {"type": "integer", "default": "many"}},
            },
        )
    }
    result = validate_plan({"steps": [{"id": "a", "action": "bad"}]}, tools=tools, max_steps=5)
    assert [p.code for p in result.problems] == ["bad_params"]


def test_has_defaults_looks_where_with_defaults_fills() -> None:
    assert has_defaults(RUN_TESTS)
    assert not has_defaults({"type": "object", "properties": {"a": {"type": "string"}}})
    assert not has_defaults({"type": "object"}) and not has_defaults(None)


def test_a_steps_own_undo_and_fallback_get_their_tools_defaults() -> None:
    raw = {
        "steps": [
            {
                "id": "a",
                "action": "notify",
                "undo": {"action": "run_tests", "args": {"fail": True}},
                "fallback": {"action": "run_tests"},
            }
        ]
    }
    result = check(raw)
    assert result.problems == []
    step = result.document.steps[0]
    assert step.undo.params == {"fail": True, "suite": "unit", "tags": ["fast"]}
    assert step.fallback.params == {"suite": "unit", "fail": False, "tags": ["fast"]}
    stored = result.submitted["steps"][0]
    assert stored["undo"] == {"action": "run_tests", "args": step.undo.params}
    assert stored["fallback"]["params"] == step.fallback.params
    assert raw["steps"][0]["undo"]["args"] == {"fail": True}  # the caller's document is not changed

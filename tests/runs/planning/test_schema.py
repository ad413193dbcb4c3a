"""The plan document model, its JSON Schema, and parsing plan text (no database)."""

from __future__ import annotations

import jsonschema
import pytest
from pydantic import ValidationError

from runs.planning.schema import (
    STEP_ID_PATTERN,
    PlanDocument,
    PlanStep,
    PlanSyntaxError,
    RollbackStep,
    parse_plan_text,
    plan_json_schema,
)


def test_the_object_form_is_normalized_with_string_ids_and_explicit_dependencies() -> None:
    doc = PlanDocument.model_validate(
        {
            "goal": "rotate logs",
            "steps": [
                {"id": "a", "action": "noop", "params": {"x": 1}},
                {"id": "b", "action": "noop", "depends_on": ["a"], "confidence": 0.5},
            ],
            "rollback": [{"action": "undo", "params": {}}],
        }
    )
    assert doc.goal == "rotate logs"
    assert [(s.id, s.depends_on) for s in doc.steps] == [("a", []), ("b", ["a"])]
    assert doc.steps[0].params == {"x": 1}
    assert doc.steps[1].confidence == 0.5
    assert doc.rollback == [RollbackStep(action="undo", params={}, description="")]


def test_a_plain_list_chains_each_step_to_the_previous_one() -> None:
    doc = PlanDocument.model_validate(
        [
            {"id": "fetch", "action": "noop"},
            {"id": "build", "action": "noop"},
            {"id": "ship", "action": "noop"},
        ]
    )
    assert [(s.id, s.depends_on) for s in doc.steps] == [
        ("fetch", []),
        ("build", ["fetch"]),
        ("ship", ["build"]),
    ]
    assert doc.goal == ""
    assert doc.rollback == []


def test_list_items_without_ids_are_numbered_by_position() -> None:
    doc = PlanDocument.model_validate(
        [{"action": "a"}, {"id": "x", "action": "b"}, {"action": "c"}]
    )
    assert [(s.id, s.depends_on) for s in doc.steps] == [
        ("step-1", []),
        ("x", ["step-1"]),
        ("step-3", ["x"]),
    ]


def test_an_explicit_depends_on_in_a_list_item_is_kept() -> None:
    doc = PlanDocument.model_validate(
        [
            {"id": "a", "action": "noop"},
            {"id": "b", "action": "noop", "depends_on": []},
            {"id": "c", "action": "noop", "depends_on": ["a"]},
            {"id": "d", "action": "noop", "depends_on": None},
        ]
    )
    assert [s.depends_on for s in doc.steps] == [[], [], ["a"], []]


def test_object_form_steps_without_ids_are_numbered_and_depend_on_nothing() -> None:
    doc = PlanDocument.model_validate({"steps": [{"action": "a"}, {"action": "b"}]})
    assert [(s.id, s.depends_on) for s in doc.steps] == [("step-1", []), ("step-2", [])]


def test_int_ids_and_int_dependencies_become_strings() -> None:
    doc = PlanDocument.model_validate(
        {"steps": [{"id": 1, "action": "a"}, {"id": 2, "action": "b", "depends_on": [1]}]}
    )
    assert [(s.id, s.depends_on) for s in doc.steps] == [("1", []), ("2", ["1"])]


def test_a_single_dependency_may_be_given_without_a_list() -> None:
    step = PlanStep.model_validate({"id": "b", "action": "x", "depends_on": "a"})
    assert step.depends_on == ["a"]


def test_tool_args_and_arguments_are_aliases_of_action_and_params() -> None:
    one = PlanStep.model_validate({"id": "a", "tool": "backup", "args": {"db": "main"}})
    two = PlanStep.model_validate({"id": "a", "tool": "backup", "arguments": {"db": "main"}})
    rollback = RollbackStep.model_validate({"tool": "restore", "args": {"db": "main"}})
    assert one == two
    assert (one.action, one.params) == ("backup", {"db": "main"})
    assert (rollback.action, rollback.params) == ("restore", {"db": "main"})


def test_null_params_and_description_mean_empty() -> None:
    step = PlanStep.model_validate({"id": "a", "action": "x", "params": None, "description": None})
    assert (step.params, step.description) == ({}, "")


def test_unknown_keys_in_a_step_are_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        PlanStep.model_validate({"id": "a", "action": "x", "dependson": ["b"]})
    assert info.value.errors()[0]["type"] == "extra_forbidden"


def test_confidence_must_lie_between_zero_and_one() -> None:
    assert PlanStep.model_validate({"id": "a", "action": "x", "confidence": 1}).confidence == 1.0
    for bad in (-0.1, 1.5, "very"):
        with pytest.raises(ValidationError):
            PlanStep.model_validate({"id": "a", "action": "x", "confidence": bad})


def test_params_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        PlanStep.model_validate({"id": "a", "action": "x", "params": ["--force"]})


@pytest.mark.parametrize("bad_id", ["a.b", "has space", "", "-lead", "x" * 101, "{{x}}"])
def test_ids_that_could_not_be_referenced_or_stored_are_rejected(bad_id: str) -> None:
    with pytest.raises(ValidationError):
        PlanStep.model_validate({"id": bad_id, "action": "x"})


def test_the_json_schema_describes_the_object_form() -> None:
    schema = plan_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == {"goal", "steps", "rollback"}
    assert schema["additionalProperties"] is False
    step = schema["$defs"]["PlanStep"]
    assert set(step["properties"]) == {
        "id",
        "action",
        "params",
        "depends_on",
        "description",
        "confidence",
        "undo",
        "locks",
    }
    assert set(step["required"]) == {"id", "action"}
    assert set(schema["$defs"]["RollbackStep"]["properties"]) == {
        "action",
        "params",
        "description",
        "undoes",
        "locks",
    }
    assert step["additionalProperties"] is False
    # Validation checks dependencies against the plan's ids; the schema still says what one is.
    assert step["properties"]["depends_on"]["items"]["pattern"] == STEP_ID_PATTERN
    good = {"goal": "g", "steps": [{"id": "a", "action": "x", "params": {}, "depends_on": []}]}
    assert jsonschema.Draft202012Validator(schema).is_valid(good)
    assert not jsonschema.Draft202012Validator(schema).is_valid({"steps": [{"id": "a"}]})


# -- parse_plan_text -----------------------------------------------------------------------
YAML_PLAN = """\
goal: back up
steps:
  - id: 1
    tool: backup
    args: {db: main}
  - id: 2
    action: notify
    params:
      text: "done: {{ steps.1.result.path }}"
    depends_on: [1]
"""

JSON_PLAN = """{
\t"goal": "back up",
\t"steps": [
\t\t{"id": 1, "tool": "backup", "args": {"db": "main"}},
\t\t{"id": 2, "action": "notify", "params": {"text": "done: {{ steps.1.result.path }}"},
\t\t "depends_on": [1]}
\t]
}"""


def test_yaml_and_tab_indented_json_texts_parse_to_the_same_plan() -> None:
    from_yaml = parse_plan_text(YAML_PLAN)
    from_json = parse_plan_text(JSON_PLAN)
    assert from_yaml == from_json
    assert PlanDocument.model_validate(from_yaml).steps[1].depends_on == ["1"]


def test_a_markdown_code_fence_around_the_plan_is_removed() -> None:
    assert parse_plan_text(f"```yaml\n{YAML_PLAN}```\n") == parse_plan_text(YAML_PLAN)


def test_a_yaml_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(PlanSyntaxError) as info:
        parse_plan_text("steps:\n  - id: a\n    params: [1, 2\n")
    assert info.value.line is not None and info.value.line >= 3
    assert info.value.column is not None
    assert f"line {info.value.line}, column {info.value.column}" in str(info.value)


def test_a_json_syntax_error_reports_line_and_column() -> None:
    with pytest.raises(PlanSyntaxError) as info:
        parse_plan_text('{\n  "steps": [\n    {"id": "a" "action": "x"}\n  ]\n}')
    assert (info.value.line, info.value.column) == (3, 16)
    assert "invalid JSON" in str(info.value)


def test_json_with_yaml_leniencies_such_as_a_trailing_comma_is_accepted() -> None:
    assert parse_plan_text('[{"id": "a", "action": "x",}]') == [{"id": "a", "action": "x"}]


def test_an_unquoted_reference_in_yaml_gets_a_hint_to_quote_it() -> None:
    with pytest.raises(PlanSyntaxError) as info:
        parse_plan_text("- id: a\n  action: x\n  params:\n    path: {{ steps.b.result }}\n")
    assert info.value.line == 4
    assert "quotes" in str(info.value)


def test_dates_in_yaml_stay_strings_so_the_plan_stays_json() -> None:
    assert parse_plan_text("- action: x\n  params: {since: 2024-05-01}\n") == [
        {"action": "x", "params": {"since": "2024-05-01"}}
    ]


@pytest.mark.parametrize(
    "text",
    [
        "- action: x\n  params: {1: a}\n",
        "- action: x\n  params: {n: .nan}\n",
        "- action: x\n  params: {blob: !!binary aGVsbG8=}\n",
    ],
)
def test_values_json_cannot_store_are_syntax_errors(text: str) -> None:
    with pytest.raises(PlanSyntaxError, match=r"\[0\]\.params"):
        parse_plan_text(text)


def test_an_empty_text_is_a_syntax_error() -> None:
    with pytest.raises(PlanSyntaxError, match="empty"):
        parse_plan_text("  \n")

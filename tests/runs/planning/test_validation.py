"""validate_plan: every kind of problem, reported all at once, and the run order (no database)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from runs.planning.validation import PlanProblem, ValidatedPlan, validate_plan
from runs.tools.base import ToolSpec

TOOLS: dict[str, ToolSpec] = {
    "backup": ToolSpec(
        name="backup",
        kind="python",
        parameters_schema={
            "type": "object",
            "properties": {"db": {"type": "string"}, "keep": {"type": "integer", "minimum": 1}},
            "required": ["db"],
            "additionalProperties": False,
        },
    ),
    "migrate": ToolSpec(
        name="migrate",
        kind="python",
        parameters_schema={
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "files": {"type": "array", "items": {"type": "string"}},
                "retries": {"type": "integer"},
            },
            "required": ["path"],
        },
    ),
    "notify": ToolSpec(name="notify", kind="python"),
    "legacy": ToolSpec(name="legacy", kind="python", enabled=False),
}


def check(raw: Any, max_steps: int = 50) -> ValidatedPlan:
    return validate_plan(raw, tools=TOOLS, max_steps=max_steps)


def only(result: ValidatedPlan) -> PlanProblem:
    assert len(result.problems) == 1, result.problems
    return result.problems[0]


def step(id: str, action: str = "notify", deps: list[str] | None = None, **params: Any) -> dict:
    return {"id": id, "action": action, "params": params, "depends_on": deps or []}


# -- valid plans -----------------------------------------------------------------------------
def test_a_valid_plan_keeps_its_document_and_gets_a_run_order() -> None:
    result = check(
        {
            "goal": "migrate",
            "steps": [
                step("backup", "backup", db="main"),
                step("migrate", "migrate", ["backup"], path="{{ steps.backup.result.file }}"),
                step("notify", "notify", ["migrate"]),
            ],
            "rollback": [{"action": "backup", "params": {"db": "main"}}],
        }
    )
    assert result.is_valid
    assert result.problems == []
    assert result.order == ["backup", "migrate", "notify"]
    assert result.document is not None and result.document.goal == "migrate"


def test_the_order_puts_dependencies_first_even_when_listed_later() -> None:
    result = check({"steps": [step("c", deps=["b"]), step("a"), step("b", deps=["a"])]})
    assert result.is_valid
    assert result.order == ["a", "b", "c"]


def test_the_list_form_with_aliases_and_int_ids_is_valid() -> None:
    result = check(
        [
            {"id": 1, "tool": "backup", "args": {"db": "main"}},
            {"id": 2, "tool": "migrate", "arguments": {"path": "{{ steps.1.result.file }}"}},
            {"tool": "notify"},
        ]
    )
    assert result.is_valid, result.problems
    assert result.order == ["1", "2", "step-3"]


def test_a_large_layered_plan_is_valid_and_fully_ordered() -> None:
    rng = random.Random(7)
    steps = []
    for i in range(1000):
        deps = rng.sample(range(i), min(i, rng.randint(0, 8)))
        steps.append(step(f"s{i}", "migrate", [f"s{d}" for d in deps], path=f"/p/{i}"))
    rng.shuffle(steps)
    result = check({"steps": steps}, max_steps=1000)
    assert result.is_valid
    position = {sid: n for n, sid in enumerate(result.order)}
    assert len(position) == 1000
    for s in steps:
        assert all(position[d] < position[s["id"]] for d in s["depends_on"])


# -- shape ---------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [None, 5, "steps: []"])
def test_a_plan_that_is_neither_an_object_nor_a_list_is_a_shape_problem(raw: Any) -> None:
    result = check(raw)
    problem = only(result)
    assert (problem.code, problem.path) == ("shape", "")
    assert result.document is None and result.order == []


def test_shape_errors_have_readable_paths_and_messages() -> None:
    result = check(
        {
            "steps": [
                {"id": "a", "action": "notify", "dependson": ["x"]},
                {"id": "b.c", "action": "notify"},
                {"id": "d", "params": []},
                "just text",
            ],
            "goall": "typo",
        }
    )
    problems = {p.path: p for p in result.problems}
    assert result.document is None
    assert {p.code for p in result.problems} == {"shape"}
    assert "did you mean 'depends_on'" in problems["steps[0].dependson"].message
    assert "'b.c' is not a valid step id" in problems["steps[1].id"].message
    assert "Step 'd' is missing 'action'" in problems["steps[2].action"].message
    assert "must be an object" in problems["steps[2].params"].message
    assert problems["steps[3]"].message.startswith("Step 4 must be an object")
    assert "did you mean 'goal'" in problems["goall"].message
    for problem in result.problems:
        assert "pydantic" not in problem.message and "[type=" not in problem.message


def test_giving_both_an_alias_and_its_field_asks_to_keep_one() -> None:
    problem = only(check([{"id": "a", "action": "notify", "tool": "backup"}]))
    assert problem.path == "steps[0].tool"
    assert "'action' and 'tool'" in problem.message


def test_a_missing_steps_list_is_a_shape_problem() -> None:
    problem = only(check({"goal": "nothing to do"}))
    assert (problem.code, problem.path) == ("shape", "steps")


# -- sizes and ids -------------------------------------------------------------------------
@pytest.mark.parametrize("raw", [[], {"steps": []}])
def test_a_plan_without_steps_is_empty(raw: Any) -> None:
    problem = only(check(raw))
    assert (problem.code, problem.path) == ("empty", "steps")


def test_a_plan_over_the_step_cap_names_the_count_and_the_cap() -> None:
    result = check([step(f"s{i}") for i in range(4)], max_steps=3)
    problem = only(result)
    assert problem.code == "too_many_steps"
    assert "4 steps" in problem.message and "limit of 3" in problem.message
    assert result.order == []


def test_a_duplicate_id_names_the_id_and_both_positions() -> None:
    problem = only(check({"steps": [step("a"), step("b"), step("a")]}))
    assert (problem.code, problem.path) == ("duplicate_id", "steps[2].id")
    assert "'a'" in problem.message
    assert "steps[0]" in problem.message and "steps[2]" in problem.message


# -- tools and params ------------------------------------------------------------------------
def test_an_unknown_tool_names_the_step_and_suggests_close_names() -> None:
    problem = only(check({"steps": [step("save", "bakup", db="main")]}))
    assert (problem.code, problem.path) == ("unknown_tool", "steps[0].action")
    assert "'save'" in problem.message and "'bakup'" in problem.message
    assert "did you mean 'backup'" in problem.message


def test_an_unknown_tool_without_close_names_lists_the_enabled_tools() -> None:
    problem = only(check({"steps": [step("x", "teleport")]}))
    assert "available tools: backup, migrate, notify" in problem.message
    assert "legacy" not in problem.message


def test_a_disabled_tool_is_reported() -> None:
    problem = only(check({"steps": [step("old", "legacy")]}))
    assert (problem.code, problem.path) == ("tool_disabled", "steps[0].action")
    assert "'old'" in problem.message and "'legacy'" in problem.message


def test_each_params_error_has_its_path_inside_params() -> None:
    result = check(
        {
            "steps": [
                step("a", "backup", db=5, keep=0, kep=2),
                step("b", "migrate", files=["ok", 3]),
            ]
        }
    )
    problems = {p.path: p for p in result.problems}
    assert {p.code for p in result.problems} == {"bad_params"}
    assert set(problems) == {
        "steps[0].params.db",
        "steps[0].params.keep",
        "steps[0].params.kep",
        "steps[1].params.files[1]",
        "steps[1].params.path",
    }
    assert "5 is not of type 'string'" in problems["steps[0].params.db"].message
    assert "did you mean 'keep'" in problems["steps[0].params.kep"].message
    assert "required param 'path' is missing" in problems["steps[1].params.path"].message
    assert problems["steps[1].params.files[1]"].message.startswith("Step 'b' (tool 'migrate')")


def test_a_required_param_given_as_a_whole_reference_is_accepted() -> None:
    result = check(
        {
            "steps": [
                step("a", "backup", db="main"),
                step(
                    "b",
                    "migrate",
                    ["a"],
                    path="{{ steps.a.result }}",
                    retries="{{ steps.a.result.n }}",
                ),
            ]
        }
    )
    assert result.is_valid, result.problems


def test_an_embedded_reference_counts_as_a_string() -> None:
    problem = only(
        check(
            {
                "steps": [
                    step("a", "backup", db="main"),
                    step("b", "migrate", ["a"], path="p", retries="n={{ steps.a.result.n }}"),
                ]
            }
        )
    )
    assert (problem.code, problem.path) == ("bad_params", "steps[1].params.retries")


def test_a_tool_with_an_invalid_schema_is_reported_once() -> None:
    tools = {"odd": ToolSpec(name="odd", kind="python", parameters_schema={"type": "objekt"})}
    result = validate_plan([step("a", "odd"), step("b", "odd")], tools=tools, max_steps=10)
    problem = only(result)
    assert problem.code == "bad_params"
    assert "schema is itself invalid" in problem.message


# -- dependencies ---------------------------------------------------------------------------
def test_a_dependency_on_a_missing_step_is_reported_with_a_suggestion() -> None:
    problem = only(check({"steps": [step("backup"), step("b", deps=["bakup"])]}))
    assert (problem.code, problem.path) == ("missing_dependency", "steps[1].depends_on[0]")
    assert "'b'" in problem.message and "did you mean 'backup'" in problem.message


@pytest.mark.parametrize("bad", ["no such.step", "x" * 101, "a\n", "{{ steps.a.result }}"])
def test_a_dependency_that_cannot_be_a_step_id_is_reported_without_guessing(bad: str) -> None:
    result = check({"steps": [step("a"), step("b", deps=["a", bad])]})
    problem = only(result)
    assert (problem.code, problem.path) == ("missing_dependency", "steps[1].depends_on[1]")
    assert "cannot be a step id" in problem.message and "did you mean" not in problem.message
    assert result.order == []


def test_a_dependency_listed_twice_is_one_dependency() -> None:
    result = check({"steps": [step("a"), step("b", deps=["a", "a"]), step("c", deps=["b"])]})
    assert result.is_valid and result.order == ["a", "b", "c"]


def test_a_step_that_depends_on_itself_is_reported() -> None:
    problem = only(check({"steps": [step("a", deps=["a"])]}))
    assert (problem.code, problem.path) == ("self_dependency", "steps[0].depends_on[0]")


def test_a_cycle_names_every_step_in_it_in_order() -> None:
    result = check(
        {
            "steps": [
                step("start"),
                step("a", deps=["start", "c"]),
                step("b", deps=["a"]),
                step("c", deps=["b"]),
                step("after", deps=["c"]),
            ]
        }
    )
    problem = only(result)
    assert (problem.code, problem.path) == ("cycle", "steps[1].depends_on")
    assert "steps a → b → c → a form a cycle" in problem.message.lower()
    assert result.order == []


def test_two_separate_cycles_are_both_reported() -> None:
    result = check(
        {
            "steps": [
                step("a", deps=["b"]),
                step("b", deps=["a"]),
                step("x", deps=["y", "a"]),
                step("y", deps=["x"]),
            ]
        }
    )
    messages = [p.message for p in result.problems]
    assert [p.code for p in result.problems] == ["cycle", "cycle"]
    assert any("a → b → a" in m for m in messages)
    assert any("x → y → x" in m for m in messages)


def test_a_dependency_on_a_malformed_step_is_not_also_called_missing() -> None:
    result = check({"steps": [{"id": "a", "action": "notify", "params": 3}, step("b", deps=["a"])]})
    assert [p.code for p in result.problems] == ["shape"]


# -- references -----------------------------------------------------------------------------
def test_a_reference_to_a_step_that_does_not_exist_is_a_bad_reference() -> None:
    problem = only(check({"steps": [step("a", "migrate", path="{{ steps.ghost.result.path }}")]}))
    assert (problem.code, problem.path) == ("bad_reference", "steps[0].params.path")
    assert "no step 'ghost'" in problem.message


def test_a_reference_to_a_step_that_is_not_a_dependency_is_a_bad_reference() -> None:
    result = check(
        {
            "steps": [
                step("backup", "backup", db="main"),
                step("other"),
                step("migrate", "migrate", ["other"], path="{{ steps.backup.result.file }}"),
            ]
        }
    )
    problem = only(result)
    assert (problem.code, problem.path) == ("bad_reference", "steps[2].params.path")
    assert "'migrate' does not depend on 'backup'" in problem.message


def test_a_reference_through_indirect_dependencies_is_fine() -> None:
    result = check(
        {
            "steps": [
                step("c", "migrate", ["b"], path="{{ steps.a.result.x }}"),
                step("b", deps=["a"]),
                step("a"),
            ]
        }
    )
    assert result.is_valid, result.problems


def test_a_step_referencing_its_own_result_is_a_bad_reference() -> None:
    problem = only(check({"steps": [step("a", "migrate", path="{{ steps.a.result }}")]}))
    assert problem.code == "bad_reference"
    assert "its own result" in problem.message


def test_rollback_steps_are_checked_for_tools_params_and_references() -> None:
    result = check(
        {
            "steps": [step("a", "backup", db="main")],
            "rollback": [
                {"action": "restore"},
                {"action": "legacy"},
                {"action": "backup", "params": {"db": 1}},
                {"action": "migrate", "params": {"path": "{{ steps.a.result.file }}"}},
            ],
        }
    )
    got = [(p.code, p.path) for p in result.problems]
    assert got == [
        ("unknown_tool", "rollback[0].action"),
        ("tool_disabled", "rollback[1].action"),
        ("bad_params", "rollback[2].params.db"),
        ("bad_reference", "rollback[3].params.path"),
    ]
    assert result.problems[0].message.startswith("Rollback step 1 (tool 'restore')")


def test_a_steps_undo_is_checked_like_a_step_and_may_use_only_its_own_result() -> None:
    ok = {
        "steps": [
            {
                **step("a", "backup", db="main"),
                "undo": {"action": "migrate", "params": {"path": "{{ steps.a.result.file }}"}},
            }
        ]
    }
    assert check(ok).is_valid
    result = check(
        {
            "steps": [
                step("b", "backup", db="main"),
                {**step("a", deps=["b"]), "undo": {"action": "restore"}},
                {**step("c", deps=["b"]), "undo": {"action": "backup", "params": {"db": 1}}},
                {
                    **step("d", deps=["b"]),
                    "undo": {"action": "migrate", "params": {"path": "{{ steps.b.result.f }}"}},
                },
                step("undo-e"),
                {**step("e"), "undo": {"action": "notify"}},
            ]
        }
    )
    got = [(p.code, p.path) for p in result.problems]
    assert got == [
        ("unknown_tool", "steps[1].undo.action"),
        ("bad_params", "steps[2].undo.params.db"),
        ("bad_reference", "steps[3].undo.params.path"),
        ("bad_undo", "steps[5].id"),
    ]
    assert result.problems[0].message.startswith("The undo of step 'a' (tool 'restore')")
    assert "only its own step's result" in result.problems[2].message


def test_a_rollback_step_may_undo_only_a_step_of_the_plan() -> None:
    linked = {"action": "notify", "undoes": "a"}
    assert check({"steps": [step("a")], "rollback": [linked]}).is_valid
    problem = only(check({"steps": [step("a")], "rollback": [{**linked, "undoes": "b"}]}))
    assert (problem.code, problem.path) == ("missing_dependency", "rollback[0].undoes")
    assert "undoes 'b', which is not a step in this plan" in problem.message


# -- all at once ---------------------------------------------------------------------------
def test_every_problem_is_reported_at_once() -> None:
    result = check(
        {
            "steps": [
                step("a", "bakup"),
                step("b", "backup", db=42),
                step("c", deps=["nowhere"]),
                step("a"),
            ]
        }
    )
    assert sorted(p.code for p in result.problems) == [
        "bad_params",
        "duplicate_id",
        "missing_dependency",
        "unknown_tool",
    ]
    assert not result.is_valid and result.order == []
    assert result.document is not None  # the shape was fine, so the document is kept


def test_shape_errors_do_not_hide_problems_in_other_steps() -> None:
    result = check({"steps": [{"id": "a", "action": "notify", "colour": "red"}, step("b", "nope")]})
    assert sorted(p.code for p in result.problems) == ["shape", "unknown_tool"]


@pytest.mark.django_db
def test_validate_with_registry_checks_the_enabled_tools_and_the_deployments_step_limit(
    settings: Any,
) -> None:
    from runs.models import Tool
    from runs.planning.validation import validate_with_registry

    for name, enabled in (("noop", True), ("retired", False)):
        Tool.objects.create(
            name=name,
            kind="python",
            config={"callable": "runs.tools.builtin.noop"},
            parameters_schema={"type": "object"},
            enabled=enabled,
        )
    settings.PLANNERWEB_MAX_PLAN_STEPS = 1
    plan = [{"id": "a", "action": "noop"}, {"id": "b", "action": "retired", "depends_on": ["a"]}]
    codes = [p.code for p in validate_with_registry(plan).problems]
    assert codes == ["too_many_steps", "tool_disabled"]
    assert validate_with_registry(plan, tools=TOOLS).problems[0].code == "too_many_steps"


# -- resource locks ---------------------------------------------------------------------------
LOCKED = {
    **TOOLS,
    "deploy": ToolSpec(
        name="deploy",
        kind="python",
        parameters_schema={
            "type": "object",
            "properties": {"environment": {"type": "string"}, "region": {"default": "eu"}},
        },
        locks=("env:{{ params.environment }}",),
    ),
}


def test_a_step_may_declare_locks_over_its_params() -> None:
    result = validate_plan(
        {
            "steps": [
                {
                    "id": "d",
                    "action": "deploy",
                    "params": {"environment": "prod"},
                    "locks": ["region:{{ params.region }}"],
                }
            ]
        },
        tools=LOCKED,
        max_steps=10,
    )
    assert result.problems == []
    assert result.document is not None
    assert result.document.steps[0].locks == ["region:{{ params.region }}"]


def test_a_lock_template_that_is_malformed_or_names_a_missing_param_is_a_problem() -> None:
    result = validate_plan(
        {
            "steps": [
                {"id": "d", "action": "deploy", "params": {}, "locks": ["x:{{ steps.a.result }}"]}
            ],
            "rollback": [{"action": "deploy", "params": {"environment": "p"}, "locks": ["{{"]}],
        },
        tools=LOCKED,
        max_steps=10,
    )
    found = {(p.path, p.code) for p in result.problems}
    assert found == {
        ("steps[0].locks[0]", "bad_lock"),
        ("steps[0].action", "bad_lock"),  # the tool's lock needs 'environment'
        ("rollback[0].locks[0]", "bad_lock"),
    }
    messages = " ".join(p.message for p in result.problems)
    assert "needs the parameter 'environment'" in messages

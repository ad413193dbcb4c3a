"""Suite files: the format is checked with every problem named, and suites are found by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runs.evals.faults import FaultSpecError, parse_fault, parse_faults
from runs.evals.suite import SuiteError, suite_find, suite_load, suite_parse

PLAN = "{goal: g, steps: [{id: a, action: noop}]}"


def suite_text(task: str = "", **top: str) -> str:
    head = "".join(f"{k}: {v}\n" for k, v in top.items())
    body = task or f"  - {{name: t1, text: do it, plan: {PLAN}, expect: {{outcome: succeeded}}}}\n"
    return f"name: s\n{head}tasks:\n{body}"


def problems(text: str) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        suite_parse(text)
    return caught.value.problems


def test_the_demo_suite_has_twelve_tasks_or_more_a_third_with_faults() -> None:
    demo = suite_load("demo")
    faulted = [t for t in demo.tasks if t.spec.faults]
    assert len(demo.tasks) >= 12
    assert len(faulted) * 3 >= len(demo.tasks)
    assert {f.target for t in faulted for f in t.spec.faults} == {"tool", "model"}


def test_defaults_apply_to_tasks_that_do_not_say() -> None:
    loaded = suite_parse(suite_text(defaults="{planner: manual, approval: reject, max_replans: 0}"))
    task = loaded.tasks[0]
    assert (task.planner, task.approval, task.max_replans) == ("manual", "reject", 0)
    assert task.plan == {"goal": "g", "steps": [{"id": "a", "action": "noop"}]}


def test_unknown_keys_bad_outcomes_and_repeated_names_are_each_named() -> None:
    task = (
        "  - {name: t1, text: x, plan: {goal: g}, expect: {outcome: done}, colour: red}\n"
        "  - {name: t1, text: x, plan: {goal: g}, expect: {outcome: failed}}\n"
    )
    found = problems(suite_text(task))
    assert any(p.startswith("tasks.0.expect.outcome") for p in found)
    assert any(p.startswith("tasks.0.colour") for p in found)


def test_repeated_task_names_are_refused() -> None:
    task = (
        "  - {name: t1, text: x, plan: {goal: g}, expect: {outcome: failed}}\n"
        "  - {name: t1, text: y, plan: {goal: g}, expect: {outcome: failed}}\n"
    )
    assert any("task names repeat: t1" in p for p in problems(suite_text(task)))


@pytest.mark.parametrize(
    ("task", "says"),
    [
        ("{name: t, text: x, expect: {outcome: failed}}", "planner manual needs a plan"),
        ("{name: t, text: x, planner: gpt, expect: {outcome: failed}}", "unknown planner"),
        (
            "{name: t, text: x, plan: {goal: g}, faults: [tool:explode@1], expect: {outcome: failed}}",
            "a tool fault is one of",
        ),
        (
            "{name: t, text: x, plan: {goal: g}, expect: {outcome: failed, cause: budget_breached}}",
            "only an escalated outcome",
        ),
        (
            "{name: t, text: x, plan: {goal: g}, expect: {outcome: failed, results: [{step: a, check: {type: nope}}]}}",
            "unknown type 'nope'",
        ),
        (
            "{name: t, text: x, plan: {goal: g}, expect: {outcome: failed, results: [{tool: a, check: {type: llm_rubric, rubric: r}}]}}",
            "llm_rubric",
        ),
        ("{name: t, text: x, plan: nowhere.yaml, expect: {outcome: failed}}", "needs a suite file"),
    ],
)
def test_a_task_that_cannot_work_is_refused_with_the_reason(task: str, says: str) -> None:
    with pytest.raises(SuiteError) as caught:
        suite_parse(suite_text(f"  - {task}\n"))
    assert says in " ".join(caught.value.problems)


def test_not_yaml_and_not_a_mapping_are_refused() -> None:
    assert "not valid YAML" in problems("name: [")[0]
    assert "a suite is a mapping" in problems("- a\n- b\n")[0]


def test_a_suite_is_found_in_the_configured_folders_before_the_demo(
    tmp_path: Path, settings: Any
) -> None:
    (tmp_path / "demo.yaml").write_text(suite_text())
    settings.PLANNERWEB_EVAL_DIRS = [str(tmp_path)]
    assert suite_find("demo") == tmp_path / "demo.yaml"
    assert suite_load("demo").name == "s"
    settings.PLANNERWEB_EVAL_DIRS = [str(tmp_path / "none")]
    assert suite_find("demo").parent.name == "evals"  # the demo's own
    with pytest.raises(SuiteError, match="no suite named 'nope'"):
        suite_find("nope")
    with pytest.raises(SuiteError, match="no suite file at"):
        suite_find(str(tmp_path / "missing.yaml"))


def test_faults_are_read_in_both_forms() -> None:
    assert str(parse_fault("model:429@2x3")) == "model:429@2x3"
    spec = parse_fault({"target": "tool", "kind": "timeout", "at": 4})
    assert (spec.target, spec.kind, spec.at, spec.times) == ("tool", "timeout", 4, 1)
    assert [str(f) for f in parse_faults("tool:fail@1, model:refusal@2")] == [
        "tool:fail@1",
        "model:refusal@2",
    ]
    timeout = parse_fault("tool:timeout@2x3/0.5s")
    assert (timeout.at, timeout.times, timeout.seconds, str(timeout)) == (
        2,
        3,
        0.5,
        "tool:timeout@2x3/0.5s",
    )
    assert parse_fault("tool:timeout@1").seconds == 0.2
    for bad in ("tool:fail", "model:fail@1", "tool:fail@0", "disk:fail@1", "tool:fail@1/1s"):
        with pytest.raises(FaultSpecError):
            parse_fault(bad)

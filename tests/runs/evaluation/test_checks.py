"""The evaluator: per-tool checks judge each result; verdicts are stored, shown, and a fail fails the step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reviews.models import ReviewItem
from runs.evaluation.checks import evaluate, validate_checks
from runs.models import LlmCall, Run, Step, Tool, TranscriptEvent
from runs.planning.providers import FACTORIES
from runs.planning.providers.scripted import ScriptedProvider
from runs.tools.services import ToolRejected, tool_create

RESULT = {"exit_code": 0, "stdout": "done: 12 rows", "rows": 12, "items": [{"id": "a"}]}


# --- pure checks ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("check", "status"),
    [
        ({"type": "json_schema", "schema": {"type": "object", "required": ["rows"]}}, "pass"),
        ({"type": "json_schema", "schema": {"type": "object", "required": ["nope"]}}, "fail"),
        ({"type": "exit_code", "equals": 0}, "pass"),
        ({"type": "exit_code", "in": [1, 2]}, "fail"),
        ({"type": "contains", "text": "12 rows", "path": "stdout"}, "pass"),
        ({"type": "contains", "text": "error", "path": "stdout"}, "fail"),
        ({"type": "regex", "pattern": r"^done: \d+", "path": "stdout"}, "pass"),
        ({"type": "regex", "pattern": r"^failed", "path": "stdout"}, "fail"),
        ({"type": "range", "path": "rows", "min": 1, "max": 100}, "pass"),
        ({"type": "range", "path": "rows", "min": 20}, "fail"),
        ({"type": "range", "path": "stdout", "min": 0}, "fail"),  # not a number
        ({"type": "contains", "text": "a", "path": "items.0.id"}, "pass"),
        ({"type": "contains", "text": "a", "path": "items.5.id"}, "fail"),  # missing path
        ({"type": "range", "path": "rows", "min": 20, "on_fail": "warn"}, "warn"),
    ],
)
def test_each_check_type_passes_or_fails_on_the_result(check: dict[str, Any], status: str) -> None:
    verdict = evaluate([check], RESULT)
    assert verdict.status == status
    if status != "pass":
        assert verdict.check == check["type"] and verdict.reason


def test_the_worst_verdict_wins_and_every_reason_is_kept() -> None:
    verdict = evaluate(
        [
            {"type": "range", "path": "rows", "max": 5, "on_fail": "warn"},
            {"type": "contains", "text": "error"},
            {"type": "exit_code"},
        ],
        RESULT,
    )
    assert (verdict.status, verdict.check) == ("fail", "contains")
    assert "range: 12" in verdict.reason and "'error' not found" in verdict.reason


@pytest.mark.parametrize(
    ("checks", "problem"),
    [
        ("nope", "must be a list"),
        ([{"type": "vibes"}], "unknown type 'vibes'"),
        ([{"type": "regex", "pattern": "("}], "invalid regex"),
        ([{"type": "range", "min": 5, "max": 1}], "'min' is above 'max'"),
        ([{"type": "json_schema", "schema": {"type": "nope"}}], "invalid JSON Schema"),
        ([{"type": "contains", "text": "x", "on_fail": "shrug"}], "on_fail"),
        ([{"type": "llm_rubric"}], "needs a 'rubric'"),
    ],
)
def test_bad_check_configs_are_refused_with_a_clear_problem(checks: Any, problem: str) -> None:
    problems = validate_checks(checks)
    assert problems and problem in problems[0]


@pytest.mark.django_db
def test_a_tool_with_bad_checks_is_not_saved() -> None:
    with pytest.raises(ToolRejected, match="checks: check 1: unknown type"):
        tool_create(
            name="t",
            kind="python",
            config={"callable": "tests.runs.toolbox.record"},
            checks=[{"type": "vibes"}],
        )
    assert not Tool.objects.filter(name="t").exists()


# --- in the engine ----------------------------------------------------------------------
def plan(key: str, *steps: tuple[str, str, list[str]]) -> dict[str, Any]:
    return {
        "steps": [
            {"id": sid, "action": tool, "params": {"key": key, "label": sid}, "depends_on": deps}
            for sid, tool, deps in steps
        ]
    }


@pytest.fixture
def checked(make_tool: Callable[..., Tool]) -> Callable[..., Tool]:
    def make(name: str, checks: list[dict[str, Any]]) -> Tool:
        return make_tool(name, "record", checks=checks)

    return make


@pytest.mark.django_db(transaction=True)
def test_a_passing_verdict_is_stored_with_the_step_in_the_same_commit(
    execute: Callable[..., Run], checked: Callable[..., Tool], key: str
) -> None:
    checked("backup", [{"type": "regex", "pattern": r"^/backups/", "path": "path"}])
    run = execute(plan(key, ("b", "backup", []), ("r", "record", ["b"])))
    assert run.status == "succeeded"
    b = Step.objects.get(run=run, key="b")
    assert (b.verdict, b.verdict_reason) == ("pass", "1 check(s) passed")
    assert Step.objects.get(run=run, key="r").verdict == ""  # no checks, no verdict
    verdict = TranscriptEvent.objects.get(run=run, kind="step.verdict")
    assert verdict.role == "evaluator" and verdict.payload["status"] == "pass"
    status = TranscriptEvent.objects.get(run=run, kind="step.status", seq=verdict.seq + 1)
    assert status.payload["to_status"] == "succeeded" and status.created_at == verdict.created_at


@pytest.mark.django_db(transaction=True)
def test_a_warning_lets_the_step_succeed_and_says_why(
    execute: Callable[..., Run], checked: Callable[..., Tool], key: str
) -> None:
    checked("backup", [{"type": "contains", "text": "zzz", "on_fail": "warn"}])
    run = execute(plan(key, ("b", "backup", [])))
    assert run.status == "succeeded"
    b = Step.objects.get(run=run, key="b")
    assert b.verdict == "warn" and "'zzz' not found" in b.verdict_reason


@pytest.mark.django_db(transaction=True)
def test_a_failing_verdict_fails_the_step_and_escalates_with_the_partial_results(
    execute: Callable[..., Run], checked: Callable[..., Tool], key: str, calls: list[str]
) -> None:
    checked("backup", [{"type": "json_schema", "schema": {"required": ["size"]}}])
    run = execute(plan(key, ("a", "record", []), ("b", "backup", ["a"]), ("c", "record", ["b"])))
    assert calls == ["a", "b"]  # c never ran
    assert run.status == "escalated"
    assert run.stop_reason.startswith("step b failed the evaluator: json_schema:")
    b = Step.objects.get(run=run, key="b")
    assert (b.status, b.verdict) == ("failed", "fail")
    assert b.result["label"] == "b"  # the rejected result is kept for the reviewer
    item = ReviewItem.objects.get(run=run, kind="escalation")
    assert (item.cause, item.step_id, item.status) == ("evaluator_fail", b.pk, "open")
    assert item.context["succeeded"][0]["id"] == "a"
    assert item.context["transcript_url"] == f"/runs/{run.pk}/"
    assert Step.objects.get(run=run, key="c").status == "skipped"


@pytest.mark.django_db(transaction=True)
def test_an_llm_rubric_is_judged_by_the_planner_provider_and_accounted(
    execute: Callable[..., Run],
    checked: Callable[..., Tool],
    key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = ScriptedProvider(
        [
            {"verdict": "pass", "reason": "a backup path"},
            {"verdict": "fail", "reason": "not a summary"},
        ]
    )
    monkeypatch.setitem(FACTORIES, "openai", lambda **_: model)
    checked("backup", [{"type": "llm_rubric", "rubric": "names a backup", "provider": "openai"}])
    run = execute(plan(key, ("b", "backup", []), ("c", "backup", ["b"])))
    assert "names a backup" in model.requests[0].messages[0]["content"]
    assert run.status == "escalated"
    assert "llm_rubric: not a summary" in run.stop_reason
    assert list(Step.objects.filter(run=run).order_by("key").values_list("verdict", flat=True)) == [
        "pass",
        "fail",
    ]
    assert list(LlmCall.objects.filter(run=run).values_list("purpose", flat=True)) == [
        "step",
        "step",
    ]


# --- configuration round trips ----------------------------------------------------------
TOOLS_YAML = """
tools:
  - name: backup
    script:
      python: tests.runs.toolbox.record
    checks:
      - {type: exit_code, equals: 0}
      - {type: contains, text: ok, path: stdout, on_fail: warn}
"""


@pytest.mark.django_db
def test_checks_survive_a_tools_file_round_trip() -> None:
    from runs.tools.yaml_io import tools_import, tools_to_yaml

    assert tools_import(text=TOOLS_YAML).created == ["backup"]
    tool = Tool.objects.get(name="backup")
    assert [c["type"] for c in tool.checks] == ["exit_code", "contains"]
    again = tools_import(text=tools_to_yaml(Tool.objects.all()))
    assert again.unchanged == ["backup"]


@pytest.mark.django_db
def test_a_tools_file_with_a_bad_check_is_refused_whole() -> None:
    from runs.tools.yaml_io import ToolsYamlError, tools_import

    with pytest.raises(ToolsYamlError, match=r"tools\[0\] \(backup\)\.checks: check 2: regex"):
        tools_import(text=TOOLS_YAML.replace("{type: contains, text: ok", "{type: regex"))
    assert not Tool.objects.exists()


@pytest.mark.django_db
def test_the_admin_form_puts_check_problems_on_the_checks_field() -> None:
    from runs.admin import ToolAdminForm

    form = ToolAdminForm(
        data={
            "name": "t",
            "kind": "python",
            "config": '{"callable": "tests.runs.toolbox.record"}',
            "parameters_schema": "{}",
            "timeout_seconds": "5",
            "max_retries": "0",
            "checks": '[{"type": "range", "min": 3, "max": 1}]',
        }
    )
    assert not form.is_valid()
    assert form.errors["checks"] == ["check 1: range 'min' is above 'max'"]


@pytest.mark.django_db(transaction=True)
def test_the_run_page_shows_each_verdict_with_its_reason(
    execute: Callable[..., Run], checked: Callable[..., Tool], key: str, client: Any, operator: Any
) -> None:
    from django.urls import reverse

    checked("backup", [{"type": "contains", "text": "zzz", "on_fail": "warn"}])
    run = execute(plan(key, ("b", "backup", [])))
    client.force_login(operator)
    page = client.get(reverse("runs:detail", kwargs={"run_id": run.pk})).content.decode()
    assert 'class="verdict verdict-warn"' in page
    assert "contains: &#x27;zzz&#x27; not found" in page

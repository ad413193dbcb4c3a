"""``manage.py evaluate``: the demo suite offline, failures and bands in the exit code, the reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from junitparser import Failure, JUnitXml

from runs.models import Run, SuiteRun, SuiteTaskResult

pytestmark = pytest.mark.django_db(transaction=True)

CHECK_PLAN = """
    plan:
      goal: Check the database
      steps:
        - {id: schema, action: noop}
        - {id: verify, action: echo, params: {text: healthy}, depends_on: [schema]}
"""


@pytest.fixture(autouse=True)
def quick(settings: Any) -> None:
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01


def evaluate(*args: str) -> int:
    try:
        call_command("evaluate", *args)
    except CommandError as exc:
        return exc.returncode
    return 0


def write_suite(folder: Path, body: str, bands: str = "") -> Path:
    path = folder / "small.yaml"
    path.write_text(f"name: small\n{bands}tasks:\n{body}")
    return path


def test_the_demo_suite_passes_offline_with_each_fault_giving_its_stated_outcome(
    tmp_path: Path,
) -> None:
    junit, report = tmp_path / "demo.xml", tmp_path / "demo.json"
    code = evaluate("demo", "--replay", "--in-place", "--junit", str(junit), "--json", str(report))
    data = json.loads(report.read_text())
    failures = {t["name"]: t["failures"] for t in data["tasks"] if not t["passed"]}
    assert (code, failures) == (0, {})
    by_name = {t["name"]: t for t in data["tasks"]}
    stated = {
        "schema-read-flakes-once": ("succeeded", "", ["fail at tool call 1 (read_schema)"]),
        "schema-read-times-out-once": ("succeeded", "", ["timeout at tool call 1 (read_schema)"]),
        "malformed-tool-output": ("failed", "", ["malformed at tool call 1 (run_tests)"]),
        "planned-after-a-rate-limit": ("succeeded", "", ["429 at model call 1"]),
        "planned-after-malformed-json": ("succeeded", "", ["malformed at model call 1"]),
        "planner-server-down": ("escalated", "planner_unavailable", None),
        "planner-refuses": ("escalated", "invalid_planner_output", None),
        "every-call-fails-from-the-third": ("escalated", "rollback_incomplete", None),
        "migration-approved": ("succeeded", "", []),
        "release-rejected": ("cancelled", "", []),
    }
    for name, (outcome, cause, injected) in stated.items():
        task = by_name[name]
        assert (task["outcome"], task["cause"]) == (outcome, cause), name
        if injected is not None:
            assert task["injected"] == injected, name
        assert task["network_calls"] == 0
    # Bounded: a model down for good is asked a few times (SDK retries, planning attempts).
    assert by_name["planner-server-down"]["tokens"] == 0
    (suite,) = JUnitXml.fromfile(str(junit))
    assert (suite.tests, suite.failures, suite.errors) == (len(data["tasks"]), 0, 0)
    assert [case.name for case in suite] == [t["name"] for t in data["tasks"]]
    assert all(case.is_passed for case in suite)
    stored = SuiteRun.objects.get()
    assert (stored.suite_name, stored.mode, stored.ok, stored.pass_rate) == (
        "demo",
        "replay",
        True,
        1.0,
    )
    assert stored.metrics["escalations_by_cause"]["planner_unavailable"] == 1
    assert SuiteTaskResult.objects.filter(suite_run=stored).count() == len(data["tasks"])


def test_a_failed_task_sets_the_exit_code_and_is_a_junit_failure(tmp_path: Path) -> None:
    body = (
        f"  - name: healthy\n    text: Check the database\n{CHECK_PLAN}"
        "    expect: {outcome: succeeded, tools: {order: [noop, echo]}}\n"
        f"  - name: wrong\n    text: Check the database, wrongly\n{CHECK_PLAN}"
        "    expect: {outcome: failed, tools: {exclude: [echo]}}\n"
    )
    suite = write_suite(tmp_path, body)
    junit = tmp_path / "out.xml"
    assert evaluate(str(suite), "--in-place", "--junit", str(junit)) == 1
    # Read as CI tools read it: a JUnit parser.
    (junit_suite,) = JUnitXml.fromfile(str(junit))
    # Two tasks, and the breached pass rate as a failed case of its own.
    assert (junit_suite.name, junit_suite.tests, junit_suite.failures) == ("small", 3, 2)
    cases = {case.name: case for case in junit_suite}
    assert list(cases) == ["healthy", "wrong", "pass rate 50% is under 100%"]
    assert cases["healthy"].is_passed
    (failure,) = cases["wrong"].result
    assert isinstance(failure, Failure)
    assert "ended succeeded, expected failed" in (failure.text or "")
    assert "tools ran that must not: echo" in (failure.text or "")
    # Half the tasks passing is enough under --fail-under 50%...
    assert evaluate(str(suite), "--in-place", "--fail-under", "50%") == 0
    # ...but not under 0.75, and never when a band is breached.
    assert evaluate(str(suite), "--in-place", "--fail-under", "0.75") == 1
    banded = write_suite(tmp_path, body, bands="bands: {max_steps_per_task: 1}\n")
    report = tmp_path / "banded.json"
    assert evaluate(str(banded), "--in-place", "--fail-under", "0.5", "--json", str(report)) == 1
    assert json.loads(report.read_text())["breaches"] == ["steps per task 2.0 is over 1.0"]
    assert [r.ok for r in SuiteRun.objects.order_by("pk")] == [False, True, False, False]


def test_repeat_runs_each_task_again(tmp_path: Path) -> None:
    body = f"  - name: healthy\n    text: Check the database\n{CHECK_PLAN}    expect: {{outcome: succeeded}}\n"
    report = tmp_path / "r.json"
    assert (
        evaluate(
            str(write_suite(tmp_path, body)), "--in-place", "--repeat", "2", "--json", str(report)
        )
        == 0
    )
    assert [(t["name"], t["attempt"]) for t in json.loads(report.read_text())["tasks"]] == [
        ("healthy", 1),
        ("healthy", 2),
    ]


def test_command_line_faults_apply_to_every_task(tmp_path: Path) -> None:
    body = f"  - name: healthy\n    text: Check the database\n{CHECK_PLAN}    expect: {{outcome: succeeded}}\n"
    report = tmp_path / "f.json"
    suite = str(write_suite(tmp_path, body))
    assert evaluate(suite, "--in-place", "--faults", "tool:malformed@2", "--json", str(report)) == 1
    task = json.loads(report.read_text())["tasks"][0]
    assert task["outcome"] == "failed"
    assert task["injected"] == ["malformed at tool call 2 (echo)"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nope"], "no suite named 'nope'"),
        (["demo", "--faults", "tool:melt@1"], "--faults"),
        (["demo", "--fail-under", "high"], "--fail-under"),
        (["demo", "--fail-under", "150%"], "--fail-under"),
        (["demo", "--repeat", "0"], "--repeat"),
        (["demo", "--junit", "/nonexistent/folder/out.xml"], "--junit: no folder"),
    ],
)
def test_unusable_input_exits_2_with_the_reason(args: list[str], says: str) -> None:
    with pytest.raises(CommandError) as caught:
        call_command("evaluate", *args)
    assert caught.value.returncode == 2
    assert says in str(caught.value)
    assert not SuiteRun.objects.exists()


def test_by_default_the_suite_runs_in_a_database_of_its_own(tmp_path: Path) -> None:
    body = f"  - name: healthy\n    text: Check the database\n{CHECK_PLAN}    expect: {{outcome: succeeded}}\n"
    before = Run.objects.count()
    assert evaluate(str(write_suite(tmp_path, body))) == 0
    assert Run.objects.count() == before  # nothing of the suite's runs is here
    assert SuiteRun.objects.get().passed == 1  # its metrics are


def test_each_task_works_in_a_sandbox_of_its_own_never_the_deployments(
    tmp_path: Path, settings: Any
) -> None:
    settings.VAR_DIR = tmp_path / "var"
    production = settings.PLANNERWEB_SANDBOX_DIR = tmp_path / "sandbox"
    production.mkdir()
    body = f"  - name: healthy\n    text: Check the database\n{CHECK_PLAN}    expect: {{outcome: succeeded}}\n"
    # read_schema creates prod.db in the sandbox it is given, on first use.
    body += "  - name: schema\n    text: Read the schema\n    plan: {goal: g, steps: [{id: s, action: read_schema}]}\n    expect: {outcome: succeeded, results: [{step: s, check: {type: json_schema, schema: {type: object, required: [tables]}}}]}\n"
    assert evaluate(str(write_suite(tmp_path, body)), "--in-place") == 0
    assert list(production.iterdir()) == []
    # The tasks' sandboxes are removed with what the tools left in them.
    assert [p.name for p in (settings.VAR_DIR / "evaluate").iterdir()] == []

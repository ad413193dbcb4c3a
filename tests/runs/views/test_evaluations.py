"""The evaluations page and "save as golden task": roles, bad input, and a saved task that runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from runs.evals.suite import suite_load
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import EvalSuite, Run, SuiteRun, SuiteTaskResult
from runs.tools.yaml_io import tools_import
from tests.runs.views.conftest import client_for, messages_of

pytestmark = pytest.mark.django_db(transaction=True)

PLAN = {
    "goal": "Say hello",
    "steps": [
        {"id": "first", "action": "noop"},
        {"id": "second", "action": "echo", "params": {"text": "hi"}, "depends_on": ["first"]},
    ],
}


@pytest.fixture
def demo_tools() -> None:
    from runs.demo import TOOLS_FILE

    tools_import(text=TOOLS_FILE.read_text())


@pytest.fixture
def finished_run(demo_tools: None, operator: User) -> Run:
    run = run_submit_plan(title="Say hello", document=PLAN, submitted_by=operator)
    assert run_execute(run_id=run.pk) == "succeeded"
    return run


def stored_run(name: str, pass_rate: float, planner: str, cost: str) -> SuiteRun:
    run = SuiteRun.objects.create(
        suite_name=name,
        mode="replay",
        tasks=2,
        passed=round(2 * pass_rate),
        pass_rate=pass_rate,
        metrics={"steps_per_task": 2, "tool_success_rate": 1, "cost": cost, "latency_ms_mean": 40},
        ok=pass_rate == 1,
        breaches=[] if pass_rate == 1 else ["pass rate 50% is under 100%"],
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    for i, passed in enumerate([True, pass_rate == 1]):
        SuiteTaskResult.objects.create(
            suite_run=run,
            name=f"t{i}",
            planner=planner,
            passed=passed,
            outcome="succeeded",
            cost=cost,
            latency_ms=40,
        )
    return run


def test_the_page_shows_each_suites_plots_breaches_and_planners(operator: User) -> None:
    stored_run("demo", 1.0, "openai", "0.002")
    stored_run("demo", 0.5, "anthropic", "0.004")
    page = client_for(operator).get("/evaluations/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.count("<polyline") == 6
    assert "outside its bands" in html and "pass rate 50% is under 100%" in html
    assert "<td>openai</td>" in html and "<td>anthropic</td>" in html
    assert "$0.002000" in html and "$0.004000" in html


def test_the_page_needs_a_role(outsider: User) -> None:
    assert client_for(outsider).get("/evaluations/").status_code == 403
    assert client_for(None).get("/evaluations/").status_code == 302


def test_a_finished_run_saved_as_a_golden_task_runs_again_and_passes(
    finished_run: Run, operator: User, settings: Any
) -> None:
    client = client_for(operator)
    page = client.get(f"/runs/{finished_run.pk}/")
    assert b"Save as golden task" in page.content
    response = client.post(f"/runs/{finished_run.pk}/golden/", {"suite": "golden"})
    assert response.status_code == 302
    assert messages_of(response) == [
        f"Saved as task run-{finished_run.pk} of suite golden: manage.py evaluate golden"
    ]
    task = yaml.safe_load(EvalSuite.objects.get(name="golden").text)["tasks"][0]
    assert task["plan"]["steps"][1]["params"] == {"text": "hi"}
    assert task["expect"] == {
        "outcome": "succeeded",
        "tools": {"order": ["noop", "echo"]},
        "max_steps": 2,
    }
    again = client.post(f"/runs/{finished_run.pk}/golden/", {"suite": "golden"})
    assert messages_of(again)[-1] == f"Run {finished_run.pk} is already a task of golden."
    # The saved suite is found by name, with this deployment's tools, and passes.
    settings.PLANNERWEB_EVAL_DIRS = []
    assert suite_load("golden").tasks[0].spec.name == f"run-{finished_run.pk}"
    call_command("evaluate", "golden", "--in-place")
    assert SuiteRun.objects.get(suite_name="golden").ok


@pytest.mark.parametrize("suite", ["", "no spaces please", "x" * 101])
def test_a_bad_suite_name_is_refused_and_nothing_is_saved(
    finished_run: Run, operator: User, suite: str
) -> None:
    response = client_for(operator).post(f"/runs/{finished_run.pk}/golden/", {"suite": suite})
    assert response.status_code == 302
    assert "A suite name is" in messages_of(response)[0]
    assert not EvalSuite.objects.exists()


def test_an_unfinished_run_is_not_saved(demo_tools: None, operator: User) -> None:
    run = run_submit_plan(title="Say hello", document=PLAN, submitted_by=operator)
    response = client_for(operator).post(f"/runs/{run.pk}/golden/", {"suite": "golden"})
    assert messages_of(response) == ["Only a finished run can become a golden task."]
    assert not EvalSuite.objects.exists()


def test_saving_needs_an_operator_a_post_and_an_existing_run(
    finished_run: Run, reviewer: User, operator: User
) -> None:
    url = f"/runs/{finished_run.pk}/golden/"
    assert client_for(reviewer).post(url, {"suite": "golden"}).status_code == 403
    assert client_for(operator).get(url).status_code == 405
    assert client_for(operator).post("/runs/999999/golden/", {"suite": "g"}).status_code == 404
    assert not EvalSuite.objects.exists()

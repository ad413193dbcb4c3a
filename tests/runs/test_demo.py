"""The offline demo: seed_demo, and each demo plan executed for real on the sandbox."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command

from runs.demo import DEMO_DIR, demo_plan, demo_plans
from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import AgentCall, LlmCall, Plan, Run, RunStatus, Step, Tool
from runs.planning.schema import parse_plan_text
from runs.planning.validation import validate_plan
from runs.tools.registry import load_tool_specs

pytestmark = pytest.mark.django_db(transaction=True)

DEMO_TOOLS = {
    "read_schema",
    "backup_database",
    "run_migration",
    "verify_integrity",
    "run_tests",
    "notify_team",
    "deploy",
    "restore_database",
    "rollback_deploy",
    "noop",
    "sleep",
    "echo",
    "current_time",
    "fail",
    "assess_migration",
    "draft_note",
    "inspect_database",
}


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def sandbox(settings: Any) -> Path:
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    seed()
    return Path(settings.PLANNERWEB_SANDBOX_DIR)


def execute(name: str) -> Run:
    plan = demo_plan(name)
    assert plan is not None
    run = run_submit_plan(title=plan.goal, document=parse_plan_text(plan.text), submitted_by=None)
    assert run.status == RunStatus.QUEUED, run.stop_reason
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    return run


def steps_of(run: Run) -> dict[str, Step]:
    return {s.key: s for s in Step.objects.filter(plan_id=run.current_plan_id)}


def statuses(run: Run) -> dict[str, str]:
    return {key: step.status for key, step in steps_of(run).items()}


def columns(db: Path, table: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def outbox(sandbox: Path) -> list[dict[str, Any]]:
    path = sandbox / "outbox.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --------------------------------------------------------------------------- seed_demo
def test_seed_demo_runs_twice_and_creates_the_users_tools_and_sandbox(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLANNERWEB_DEMO_PASSWORD", raising=False)
    first = seed()
    second = seed()
    assert "users: 3 created, 0 left as they were" in first
    assert "users: 0 created, 3 left as they were" in second
    assert "tools: 0 created, 17 left as they were" in second
    assert "operator / operator" in second
    assert set(Tool.objects.values_list("name", flat=True)) == DEMO_TOOLS
    assert User.objects.count() == 3
    operator = authenticate(username="operator", password="operator")
    reviewer = authenticate(username="reviewer", password="reviewer")
    admin = authenticate(username="admin", password="admin")
    assert operator is not None and reviewer is not None and admin is not None
    assert list(operator.groups.values_list("name", flat=True)) == ["operators"]
    assert list(reviewer.groups.values_list("name", flat=True)) == ["reviewers"]
    assert admin.is_staff and admin.is_superuser and not operator.is_staff
    assert Path(settings.PLANNERWEB_SANDBOX_DIR).is_dir()
    assert Run.objects.count() == 0


def test_seed_demo_takes_passwords_from_the_environment_and_never_prints_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLANNERWEB_DEMO_PASSWORD", "correct-horse")
    out = seed()
    assert authenticate(username="operator", password="correct-horse") is not None
    assert authenticate(username="operator", password="operator") is None
    assert "correct-horse" not in out


def test_seed_demo_leaves_a_changed_password_alone() -> None:
    seed()
    admin = User.objects.get(username="admin")
    admin.set_password("changed-it")
    admin.save()
    seed()
    assert authenticate(username="admin", password="changed-it") is not None


def test_seed_demo_with_runs_submits_the_migration_plan_and_the_offline_replan_once() -> None:
    seed("--with-runs")
    out = seed("--with-runs")
    migration, healing = Run.objects.select_related("task").order_by("pk")
    assert migration.status == healing.status == RunStatus.QUEUED
    assert migration.task.submitted_by == User.objects.get(username="operator")
    assert migration.task.title == demo_plan("migration").goal  # type: ignore[union-attr]
    assert (migration.task.planner, healing.task.planner) == ("", "playbook")
    assert "none submitted" in out


def test_the_seeded_demo_replans_offline_and_the_run_page_shows_the_diff(
    settings: Any, client: Any
) -> None:
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    seed("--with-runs")
    healing = Run.objects.get(task__planner="playbook")
    assert run_execute(run_id=healing.pk) == RunStatus.SUCCEEDED
    v1, v2 = Plan.objects.filter(run=healing).order_by("version")
    assert (v2.source, v2.parent_id) == (Plan.Source.REPLANNER, v1.pk)
    assert v2.diff["changed"][0]["id"] == "unit_tests"
    replaced = v2.diff["changed"][0]["values"]["params"]["to"]
    assert replaced["suite"] == "unit" and not replaced.get("fail")  # defaults filled in
    assert not LlmCall.objects.filter(run=healing).exists()  # no API key needed
    client.force_login(User.objects.get(username="operator"))
    page = client.get(f"/runs/{healing.pk}/").content.decode()
    assert 'data-plan-diff="2"' in page and "changed: unit_tests" in page


# --------------------------------------------------------------------------- the plans
def test_the_demo_offers_six_plans() -> None:
    assert [p.name for p in demo_plans()] == [
        "deploy",
        "deploy-broken",
        "migration",
        "migration-broken",
        "migration-llm",
        "tests-fallback",
    ]


@pytest.mark.parametrize(
    "name",
    ["migration", "migration-broken", "migration-llm", "deploy", "deploy-broken", "tests-fallback"],
)
def test_each_demo_plan_validates_against_the_imported_tools(name: str, sandbox: Path) -> None:
    plan = demo_plan(name)
    assert plan is not None
    validated = validate_plan(parse_plan_text(plan.text), tools=load_tool_specs(), max_steps=2000)
    assert validated.problems == []
    assert validated.is_valid


def test_a_step_leaving_out_parameters_with_defaults_runs_with_them(sandbox: Path) -> None:
    """The planner-executor write-up's own first step: ``run_tests`` with no params."""
    document = {"steps": [{"id": "1", "action": "run_tests", "params": {}}]}
    run = run_submit_plan(title="tests", document=document, submitted_by=None)
    assert run.status == RunStatus.QUEUED, run.stop_reason
    run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    step = Step.objects.get(run=run)
    assert step.params == {"suite": "unit", "fail": False, "seconds": 0}
    assert step.result["suite"] == "unit"
    stored = run.current_plan.document  # type: ignore[union-attr]
    assert stored["steps"][0]["params"] == step.params


def test_the_migration_plan_succeeds_and_adds_the_email_column(sandbox: Path) -> None:
    run = execute("migration")
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    main = {k: v for k, v in statuses(run).items() if not k.startswith("rollback-")}
    assert set(main.values()) == {"succeeded"}
    assert statuses(run)["rollback-1"] == "skipped"  # the rollback never ran
    steps = steps_of(run)
    assert steps["backup"].result["path"] == "backups/demo.db"
    assert steps["dry_run"].result["applied"] is False
    assert "email" in steps["dry_run"].result["tables_after"]["users"]
    assert steps["migrate"].result["applied"] is True
    assert "email" in columns(sandbox / "prod.db", "users")
    assert "email" not in columns(sandbox / "backups/demo.db", "users")
    [line] = outbox(sandbox)
    assert line["channel"] == "#db"
    assert line["message"] == "users.email is live on prod.db (backup: backups/demo.db)"


def test_the_migration_with_model_steps_runs_offline_on_the_recorded_answers(
    sandbox: Path,
) -> None:
    run = execute("migration-llm")
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    steps = steps_of(run)
    assert steps["assess"].result["require_column"] == "users.email"
    assert steps["verify"].params["require_column"] == "{{ steps.assess.result.require_column }}"
    assert "email" in columns(sandbox / "prod.db", "users")
    [line] = outbox(sandbox)
    assert line["message"] == steps["note"].result
    assert line["message"].startswith("The users table of prod.db now has an email column")
    assert steps["inspect"].result == "users.email exists and prod.db passes its integrity check."
    inner = AgentCall.objects.filter(run=run).order_by("index")
    assert [(c.tool, c.status) for c in inner] == [
        ("read_schema", "succeeded"),
        ("verify_integrity", "succeeded"),
    ]
    calls = LlmCall.objects.filter(run=run).order_by("id")
    purposes = [c.purpose for c in calls]
    assert purposes == ["tool", "agent", "agent", "agent", "tool"]
    assert {c.provider for c in calls} == {"recorded"}
    assert all(c.tokens_in > 0 and c.tokens_out > 0 for c in calls)
    prompts = [
        e.payload["prompt"][-1]["content"]
        for e in run.events.filter(kind="planner.call", payload__purpose="tool").order_by("seq")
    ]
    assert '"users":[' in prompts[0] and "add_email_to_users" in prompts[0]
    assert prompts[1].endswith("risk low; verified: true")


def test_the_broken_migration_ends_rolled_back_with_the_database_restored(
    sandbox: Path,
) -> None:
    run = execute("migration-broken")
    assert run.status == RunStatus.ROLLED_BACK, run.stop_reason
    assert statuses(run) == {
        "read_schema": "succeeded",  # it only reads: nothing to undo
        "backup": "rolled_back",
        "migrate": "failed",
        "verify": "skipped",
        "notify": "skipped",
        "rollback-1": "succeeded",
        "rollback-2": "succeeded",
    }
    steps = steps_of(run)
    assert "1 of 2 parts were already committed" in steps["migrate"].error
    assert steps["rollback-1"].result["restored"] is True
    # The half-applied column is gone: the database is the backup again.
    assert "legacy_ref" not in columns(sandbox / "prod.db", "orders")
    assert columns(sandbox / "prod.db", "orders") == columns(
        sandbox / "backups/before-broken.db", "orders"
    )
    assert [m["message"] for m in outbox(sandbox)] == [
        "broken_migration failed half-way; prod.db was restored from its backup"
    ]


def test_the_deploy_plan_succeeds_with_tests_and_backup_in_parallel(sandbox: Path) -> None:
    run = execute("deploy")
    assert run.status == RunStatus.SUCCEEDED, run.stop_reason
    steps = steps_of(run)
    unit, backup = steps["unit_tests"], steps["backup"]
    assert unit.started_at < backup.finished_at and backup.started_at < unit.finished_at
    assert steps["deploy_staging"].started_at >= max(unit.finished_at, backup.finished_at)
    production = json.loads((sandbox / "deployed-production.json").read_text())
    assert production["version"] == "2.4.0"
    assert [m["message"] for m in outbox(sandbox)] == ["2.4.0 is live in production"]


def test_the_broken_deploy_undoes_staging_and_skips_the_undo_of_production(
    sandbox: Path,
) -> None:
    run = execute("deploy-broken")
    assert run.status == RunStatus.ROLLED_BACK, run.stop_reason
    assert statuses(run) == {
        "unit_tests": "succeeded",  # tests only read: nothing to undo
        "backup": "rolled_back",
        "deploy_staging": "rolled_back",
        "smoke_tests": "failed",
        "deploy_production": "skipped",
        "notify": "skipped",
        "undo-deploy_staging": "succeeded",
        "undo-deploy_production": "skipped",  # production never got the release
        "rollback-1": "succeeded",
    }
    steps = steps_of(run)
    assert "injected failure" in steps["smoke_tests"].error
    assert (
        steps["undo-deploy_staging"].params["version"]
        == "{{ steps.deploy_staging.result.version }}"
    )
    assert steps["undo-deploy_staging"].result == {
        "environment": "staging",
        "rolled_back": True,
        "from": "2.5.0-rc1",
        "to": None,
    }
    # The step's own undo runs first, then the plan-level rollback.
    assert steps["undo-deploy_staging"].finished_at <= steps["rollback-1"].started_at
    assert steps["rollback-1"].result["restored"] is True
    assert not (sandbox / "deployed-production.json").exists()
    assert not (sandbox / "deployed-staging.json").exists()
    assert outbox(sandbox) == []


def test_a_failed_deploy_after_a_good_one_puts_staging_back_on_the_good_version(
    sandbox: Path,
) -> None:
    assert execute("deploy").status == RunStatus.SUCCEEDED
    assert execute("deploy-broken").status == RunStatus.ROLLED_BACK
    staging = json.loads((sandbox / "deployed-staging.json").read_text())
    production = json.loads((sandbox / "deployed-production.json").read_text())
    assert (staging["version"], production["version"]) == ("2.4.0", "2.4.0")


# --------------------------------------------------------------------------- the scripts
@pytest.mark.parametrize("db", ["../outside.db", "/etc/passwd", "."])
def test_the_demo_scripts_refuse_paths_outside_the_sandbox(db: str, tmp_path: Path) -> None:
    script = DEMO_DIR / "scripts" / "read_schema.py"
    done = subprocess.run(
        [sys.executable, str(script), f"--db={db}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1
    assert "must be a file path inside the sandbox" in done.stderr
    assert not (tmp_path.parent / "outside.db").exists()

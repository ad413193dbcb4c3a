"""Direct calls offline: a task one tool answers runs as one call, with no plan to write."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from reviews.models import ReviewItem
from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_plan, run_submit_task
from runs.models import RunStatus, Step
from runs.planning.options import PlannerOptions
from runs.planning.planner import plan_task
from runs.planning.prompt import context_for
from runs.planning.providers.playbook.direct import fill_params
from runs.tools.base import ToolError
from runs.tools.builtin import current_time

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(settings: Any) -> None:
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    call_command("seed_demo", stdout=StringIO())


def test_what_time_is_it_runs_as_one_call_of_current_time(demo: None, operator: Any) -> None:
    run = run_submit_task(title="What time is it?", submitted_by=operator, planner="playbook")
    assert run_plan(run_id=run.pk) == RunStatus.EXECUTING  # no approval policy holds it
    decision = run.events.get(kind="planner.decision").payload
    assert decision["planner"] == "playbook:direct"
    assert decision["mode"] == "direct"
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    step = Step.objects.get(run=run)
    assert step.tool_name == "current_time"
    assert step.result["timezone"] == "UTC"
    assert len(step.result["time"]) == 8


def test_the_parameters_a_task_states_fill_the_call(demo: None) -> None:
    outcome = plan_task(context_for(task="Run the smoke tests"), PlannerOptions(planner="playbook"))
    assert outcome.ok, outcome.reason
    assert outcome.mode == "direct"
    assert outcome.document["steps"] == [
        {
            "id": "run_tests",
            "action": "run_tests",
            "params": {"suite": "smoke"},
            "description": outcome.document["steps"][0]["description"],
        }
    ]
    assert outcome.reason.startswith("direct call of run_tests (similarity ")
    assert outcome.reason.endswith("from the task: suite='smoke'")


def test_a_tool_the_task_leaves_a_required_value_out_of_is_not_guessed(demo: None) -> None:
    outcome = plan_task(
        context_for(task="Post a message to the team"), PlannerOptions(planner="playbook")
    )
    assert not outcome.ok
    assert "the tool notify_team, but the task does not say its message" in outcome.reason


def test_in_upfront_mode_the_planner_reuses_plans_only(demo: None, operator: Any) -> None:
    run = run_submit_task(
        title="What time is it?", submitted_by=operator, planner="playbook", mode="upfront"
    )
    assert run_plan(run_id=run.pk) == RunStatus.ESCALATED
    assert ReviewItem.objects.get(run=run).cause == "no_playbook_match"


def test_fill_params_reads_enum_values_versions_files_and_quoted_text() -> None:
    schema = {
        "type": "object",
        "properties": {
            "environment": {"type": "string", "enum": ["staging", "production"]},
            "version": {"type": "string"},
            "db": {"type": "string", "default": "prod.db"},
            "message": {"type": "string"},
            "channel": {"type": "string", "default": "#deploys"},
        },
        "required": ["environment", "version", "message"],
    }
    filled = fill_params('Ship 2.5.0 to staging from copy.db and say "done" in #ops', schema)
    assert filled.params == {
        "environment": "staging",
        "version": "2.5.0",
        "db": "copy.db",
        "message": "done",
        "channel": "#ops",
    }
    assert filled.missing == []
    both = fill_params("staging then production", schema)
    assert both.missing == ["environment", "version", "message"]  # two environments: ambiguous


def test_current_time_answers_in_a_zone_and_refuses_an_unknown_one() -> None:
    assert current_time("Europe/Paris")["timezone"] == "Europe/Paris"
    with pytest.raises(ToolError, match="unknown time zone 'Mars/Base'"):
        current_time("Mars/Base")


def test_the_seed_migration_task_plans_the_migration_playbook_end_to_end(demo: None) -> None:
    outcome = plan_task(
        context_for(task="Migrate our database to the new schema"),
        PlannerOptions(planner="playbook"),
    )
    assert outcome.ok, outcome.reason
    assert outcome.planner == "playbook:demo-migration"
    assert outcome.mode == "upfront"
    assert [s["action"] for s in outcome.document["steps"]][:3] == [
        "read_schema",
        "backup_database",
        "run_migration",
    ]


def test_a_database_named_in_both_title_and_description_is_backed_up_not_overwritten(
    demo: None, operator: Any
) -> None:
    run = run_submit_task(
        title="Back up prod.db",
        description="Make a backup of prod.db",
        submitted_by=operator,
        planner="playbook",
    )
    assert run_plan(run_id=run.pk) == RunStatus.EXECUTING
    step = Step.objects.get(run=run)
    assert step.tool_name == "backup_database"
    assert step.params == {"db": "prod.db"}  # the backup file is the tool's default
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    step.refresh_from_db()
    assert step.result["db"] == "prod.db"
    assert step.result["path"].startswith("backups/prod-")


def test_fill_params_gives_a_value_the_task_repeats_to_one_parameter_only() -> None:
    schema = {
        "type": "object",
        "properties": {
            "db": {"type": "string", "default": "prod.db"},
            "backup": {"type": "string"},
            "source_column": {"type": "string"},
            "target_column": {"type": "string"},
        },
        "required": ["backup"],
    }
    filled = fill_params("Restore prod.db; prod.db is broken; copy users.email", schema)
    assert filled.params == {"db": "prod.db", "source_column": "users.email"}
    assert filled.missing == ["backup"]
    two = fill_params("Restore prod.db from backups/pre.db, prod.db first", schema)
    assert two.params["db"] == "prod.db" and two.params["backup"] == "backups/pre.db"

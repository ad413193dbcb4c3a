"""A model plans with an llm tool and the run executes it: the script written by a model, applied by a tool."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from runs.demo import demo_plan
from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import LlmCall, Playbook, RunStatus, Tool
from runs.planning.prompt import context_for, system_prompt
from runs.planning.schema import parse_plan_text
from tests.runs import toolbox
from tests.runs.planning.providers.fake_llm import Answer, FakeLLM, openai_response, running

KEY = "sk-test-abcdefghijklmnopqrstuvwxyz0123"
SQL_SCHEMA = {
    "type": "object",
    "properties": {"sql": {"type": "string"}},
    "required": ["sql"],
    "additionalProperties": False,
}


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


@pytest.fixture
def tools(db: None) -> None:
    Tool.objects.create(
        name="write_migration",
        description="Write the SQL of a schema change.",
        kind=Tool.Kind.LLM,
        config={"prompt": "Write SQLite SQL that does: {change}", "output_schema": SQL_SCHEMA},
        parameters_schema={"type": "object", "properties": {"change": {"type": "string"}}},
    )
    Tool.objects.create(
        name="record",
        description="Apply (record) a value.",
        kind=Tool.Kind.PYTHON,
        config={"callable": "tests.runs.toolbox.record"},
        parameters_schema={"type": "object"},
    )


def test_the_planner_is_told_which_tools_think_and_what_they_answer(tools: None) -> None:
    text = system_prompt(context_for(task="add a column"))
    assert "- write_migration [llm]: Write the SQL of a schema change." in text
    assert f"answer: {json.dumps(SQL_SCHEMA, sort_keys=True)}" in text
    assert "Tools marked [llm] are a focused prompt to a language model" in text
    assert "- record: Apply (record) a value." in text
    assert "[agent]" not in text and "Tools marked [agent]" not in text


def test_the_planner_is_told_how_to_give_an_agent_step(tools: None) -> None:
    Tool.objects.create(
        name="investigate",
        description="A model explores with tools.",
        kind=Tool.Kind.AGENT,
        parameters_schema={"type": "object"},
    )
    text = system_prompt(context_for(task="find the slow query"))
    assert "- investigate [agent]: A model explores with tools." in text
    assert '{"instruction": "<what to do, in words>", "tools": ["<tool>", ...]}' in text


@pytest.mark.django_db(transaction=True)
def test_a_planned_llm_step_writes_the_script_a_tool_step_applies(
    fake: FakeLLM, tools: None, settings: Any, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    settings.PLANNERWEB_OPENAI_BASE_URL = fake.url + "/v1"
    settings.PLANNERWEB_PLANNER = "openai"
    settings.PLANNERWEB_PLANNER_SDK_RETRIES = 0
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    plan = {
        "goal": "add users.email",
        "steps": [
            {
                "id": "write",
                "action": "write_migration",
                "params": {"change": "add an email column to users"},
                "confidence": 0.9,
            },
            {
                "id": "apply",
                "action": "record",
                "params": {"key": key, "label": "apply", "value": "{{ steps.write.result.sql }}"},
                "depends_on": ["write"],
                "confidence": 0.9,
            },
        ],
        "rollback": [],
    }
    sql = "ALTER TABLE users ADD COLUMN email TEXT;"
    fake.queue(
        Answer(body=openai_response(json.dumps(plan))),
        Answer(body=openai_response(json.dumps({"sql": sql}))),
    )
    run = run_submit_task(title="Add an email column to users", submitted_by=None)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    assert toolbox.CALLS[key] == ["apply"]
    run.refresh_from_db()
    apply = run.current_plan.steps.get(key="apply")
    assert apply.result["value"] == sql
    purposes = list(
        LlmCall.objects.filter(run=run).order_by("id").values_list("purpose", flat=True)
    )
    assert purposes == ["plan", "tool"]
    assert "[llm]" in fake.requests[0].body["instructions"]
    assert fake.requests[1].body["input"][0]["content"].endswith("add an email column to users")


@pytest.mark.django_db(transaction=True)
def test_the_seed_migration_planned_by_a_model_runs_end_to_end_with_its_model_steps(
    fake: FakeLLM, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's migration with model steps, planned and answered through the openai SDK."""
    call_command("seed_demo", stdout=StringIO())
    Playbook.objects.all().delete()  # the model plans: no stored plan is reused
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    settings.PLANNERWEB_OPENAI_BASE_URL = fake.url + "/v1"
    settings.PLANNERWEB_PLANNER = "openai"
    settings.PLANNERWEB_PLANNER_SDK_RETRIES = 0
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    demo = demo_plan("migration-llm")
    assert demo is not None
    document = parse_plan_text(demo.text)
    configs = {t.name: t.config for t in Tool.objects.filter(kind__in=["llm", "agent"])}
    assess = configs["assess_migration"]["recorded"]
    decisions = configs["inspect_database"]["recorded"]
    note = {"answer": "users.email is live on prod.db; integrity checks passed."}
    fake.queue(
        *(Answer(body=openai_response(json.dumps(a))) for a in [document, assess, *decisions, note])
    )
    run = run_submit_task(
        title="Add an email column to the users table", submitted_by=None, confirm_plan="never"
    )

    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    run.refresh_from_db()
    steps = {s.key: s for s in run.current_plan.steps.all()}
    assert set(steps) >= {"assess", "inspect", "note"}, (steps, run.current_plan.document)
    assert steps["assess"].result["require_column"] == "users.email"
    assert steps["inspect"].result == decisions[-1]["answer"]
    assert steps["note"].result == note["answer"]
    sandbox = Path(settings.PLANNERWEB_SANDBOX_DIR)
    sent = [json.loads(line) for line in (sandbox / "outbox.jsonl").read_text().splitlines()]
    assert [m["message"] for m in sent] == [note["answer"]]  # the drafted words went out
    with sqlite3.connect(sandbox / "prod.db") as db:
        assert "email" in [row[1] for row in db.execute("PRAGMA table_info(users)")]
    calls = LlmCall.objects.filter(run=run).order_by("id")
    assert [c.purpose for c in calls] == ["plan", "tool", "agent", "agent", "agent", "tool"]
    assert {c.provider for c in calls} == {"openai"}
    assert len(fake.requests) == 6
    # The planner was told which tools think, and the agent step what it may call.
    assert "- assess_migration [llm" in fake.requests[0].body["instructions"]
    assert "- inspect_database [agent" in fake.requests[0].body["instructions"]

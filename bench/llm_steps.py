"""Model calls and tokens for the seed's migration task: a whole plan up front vs one step at a time.

The task: "analyse current schema, create backup, write migration script, test migration on
copy, run on production, verify, update config". Seven steps; the script is written by an
``llm`` tool step (``write_migration``, JSON answer ``{"sql"}``), the rest are action tools
(python stand-ins that echo their params). A scripted model answers every call, the
planner's and the ``llm`` step's, with fixed answers; tokens are counted the same way for
every call (characters / 4 of everything sent, instructions and tool catalogue included, and
of the answer), so the rows compare what each mode sends, not what a vendor's tokenizer says.
Each run goes through the real planner, engine, accounting and database (SQLite, a temp dir).

    .venv/bin/python bench/llm_steps.py

Rows:
  (a) upfront: one planner call for the whole plan, then the llm step's call;
  (b) iterative: one planner call per step (each resending the task, the catalogue and the
      history so far), plus the llm step's call;
  (c) one agent step doing it all: one planner call for a one-step plan, then the agent's
      model calls (one per tool call, each resending the conversation so far, and one for its
      answer) and the llm tool's call it makes inside.
"""

from __future__ import annotations

import json
from typing import Any

from scratch_django import setup_scratch_django

TASK = (
    "Migrate the users table: analyse the current schema, create a backup, write the migration "
    "script, test the migration on a copy, run it on production, verify, update the config"
)
SQL = "ALTER TABLE users ADD COLUMN email TEXT;"
ACTIONS = {
    "read_schema": ("Read the tables and columns of a database.", {"db": "string"}),
    "backup_database": ("Copy a database to a backup file.", {"db": "string", "path": "string"}),
    "apply_sql": (
        "Apply SQL to a database; dry_run applies it to a throwaway copy.",
        {"db": "string", "sql": "string", "dry_run": "boolean"},
    ),
    "verify_integrity": ("Check a database's integrity.", {"db": "string"}),
    "update_config": ("Set a key in the service config.", {"key": "string", "value": "string"}),
}
# (id, tool, params): the plan both modes arrive at; "{{ steps.write.result.sql }}" upfront.
STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("analyse", "read_schema", {"db": "prod.db"}),
    ("backup", "backup_database", {"db": "prod.db", "path": "backups/pre.db"}),
    ("write", "write_migration", {"change": "add an email column to users", "schema": "users(id)"}),
    ("test", "apply_sql", {"db": "prod.db", "sql": "@sql", "dry_run": True}),
    ("run", "apply_sql", {"db": "prod.db", "sql": "@sql", "dry_run": False}),
    ("verify", "verify_integrity", {"db": "prod.db"}),
    ("config", "update_config", {"key": "users.email", "value": "enabled"}),
]


def setup() -> None:
    setup_scratch_django()
    from runs.models import Tool

    for name, (description, params) in ACTIONS.items():
        Tool.objects.create(
            name=name,
            description=description,
            kind="python",
            config={"callable": "runs.tools.builtin.echo"},
            parameters_schema={
                "type": "object",
                "properties": {p: {"type": t} for p, t in params.items()},
                "required": list(params),
            },
        )
    Tool.objects.create(
        name="write_migration",
        description="Write the SQL of a schema change.",
        kind="llm",
        config={
            "prompt": "Schema: {schema}\nWrite SQLite SQL that does: {change}",
            "output_schema": {
                "type": "object",
                "properties": {"sql": {"type": "string"}},
                "required": ["sql"],
            },
        },
        parameters_schema={
            "type": "object",
            "properties": {"change": {"type": "string"}, "schema": {"type": "string"}},
            "required": ["change", "schema"],
        },
    )
    Tool.objects.create(
        name="migrator",
        description="An agent that does a whole task with the tools it is given.",
        kind="agent",
        config={"max_iterations": 12, "max_tokens": 200_000},
        parameters_schema={
            "type": "object",
            "properties": {
                "instruction": {"type": "string"},
                "tools": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["instruction", "tools"],
        },
    )


def agent_plan() -> dict[str, Any]:
    tools = sorted({tool for _sid, tool, _params in STEPS})
    params = {"instruction": TASK, "tools": tools}
    return {
        "goal": TASK,
        "steps": [{"id": "all", "action": "migrator", "params": params, "confidence": 0.9}],
        "rollback": [],
    }


def agent_decision(turn: int) -> dict[str, Any]:
    """The agent's decision at ``turn`` (0-based): the plan's steps in order, then its answer."""
    if turn >= len(STEPS):
        return {"thought": "done", "tool": None, "arguments": None, "done": True, "answer": "ok"}
    step = next_step(turn + 1)
    return {
        "thought": step["thought"],
        "tool": step["tool"],
        "arguments": step["arguments"],
        "done": False,
    }


def upfront_plan() -> dict[str, Any]:
    steps = []
    for i, (sid, tool, params) in enumerate(STEPS):
        filled = {
            k: "{{ steps.write.result.sql }}" if v == "@sql" else v for k, v in params.items()
        }
        deps = [STEPS[i - 1][0]] if i else []
        if "@sql" in params.values() and "write" not in deps:
            deps.append("write")
        steps.append(
            {"id": sid, "action": tool, "params": filled, "depends_on": deps, "confidence": 0.9}
        )
    return {"goal": TASK, "steps": steps, "rollback": []}


def next_step(number: int) -> dict[str, Any]:
    """The iterative answer for step ``number`` (1-based); the last one stops with its tool."""
    _sid, tool, params = STEPS[number - 1]
    filled = {k: SQL if v == "@sql" else v for k, v in params.items()}
    return {
        "thought": f"step {number} of the migration",
        "next_step": tool,
        "tool": tool,
        "arguments": filled,
        "stop": number == len(STEPS),
        "confidence": 0.9,
    }


class CountingModel:
    """Answers planner, iterative and llm-tool requests; tokens = characters / 4 both ways."""

    name = "openai"
    default_model = "bench-model"

    def __init__(self, plan: Any) -> None:
        self.steps = 0
        self.plan = plan

    def complete(self, request: Any) -> Any:
        from runs.planning.providers.base import ModelReply

        if request.schema_name == "plan":
            data: Any = self.plan()
        elif request.schema_name == "decision":
            data = agent_decision(sum(1 for m in request.messages if m["role"] == "assistant"))
        elif request.schema_name == "next_step":
            self.steps += 1
            data = next_step(self.steps)
        else:
            data = {"sql": SQL}
        text = json.dumps(data)
        sent = len(request.system) + sum(len(m["content"]) for m in request.messages)
        return ModelReply(
            text=text,
            data=data,
            tokens_in=sent // 4 + 1,
            tokens_out=len(text) // 4 + 1,
            model=self.default_model,
        )


def measure(mode: str, plan: Any, steps: int) -> tuple[str, int, int, int, int, int]:
    from django.conf import settings

    from runs.lifecycle.claim import run_execute
    from runs.lifecycle.planning import run_submit_task
    from runs.models import LlmCall, Step
    from runs.planning.providers import FACTORIES

    model = CountingModel(plan)
    FACTORIES["openai"] = lambda **_: model
    settings.PLANNERWEB_PLANNER = "openai"
    run = run_submit_task(title=TASK, submitted_by=None, planner="openai", mode=mode)
    status = run_execute(run_id=run.pk)
    calls = list(LlmCall.objects.filter(run=run))
    planner = [c for c in calls if c.purpose in ("plan", "step", "repair")]
    run.refresh_from_db()
    done = Step.objects.filter(plan_id=run.current_plan_id, status="succeeded").count()
    tokens_in = sum(c.tokens_in for c in calls)
    tokens_out = sum(c.tokens_out for c in calls)
    assert status == "succeeded" and done == steps, (status, done)
    return status, len(calls), len(planner), tokens_in, tokens_out, done


def main() -> None:
    setup()
    print(f"task: {len(STEPS)} steps, one of them an llm step; scripted model, tokens = chars/4")
    print(f"{'row':<34}{'model calls':>12}{'planner':>9}{'tokens in':>11}{'out':>7}{'total':>8}")
    rows = (
        ("(a) upfront plan with llm steps", "upfront", upfront_plan, len(STEPS)),
        ("(b) iterative", "iterative", upfront_plan, len(STEPS)),
        ("(c) one agent step doing it all", "upfront", agent_plan, 1),
    )
    for label, mode, plan, steps in rows:
        _status, n, planner, t_in, t_out, _done = measure(mode, plan, steps)
        print(f"{label:<34}{n:>12}{planner:>9}{t_in:>11}{t_out:>7}{t_in + t_out:>8}")


if __name__ == "__main__":
    main()

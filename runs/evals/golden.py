"""From a finished run to a golden task: its task, the plan that ran and how it ended.

A recorded run (its provider answers kept, ``PLANNERWEB_RECORD_MODEL_ANSWERS``) keeps its
model planner and gets those answers as its cassette, written where ``manage.py evaluate``
looks for the suite's cassettes, so ``--replay`` plans and executes it again offline.
Any other run keeps the plan that ran (planner ``manual``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import transaction

from runs.evals.cassettes import Cassette
from runs.evals.observe import run_observe
from runs.evals.suite import SuiteError, suite_parse
from runs.models import EvalSuite, LlmCall, ModelAnswer, Run, RunStatus
from runs.planning.options import PLANNERS
from runs.statemachine import RUN_TERMINAL
from runs.textdata import TextDataError, parse_yaml

SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class GoldenTask:
    suite: EvalSuite
    task: str
    cassette: Path | None  # the recorded run's answers, written beside the suite


class GoldenError(ValueError):
    """The run cannot become a golden task (not finished, no plan, a bad suite name)."""


def suite_cassettes(suite_name: str) -> Path:
    """Where ``manage.py evaluate`` finds the cassettes of a suite kept in the database."""
    return Path(settings.VAR_DIR) / "evaluate" / "cassettes" / suite_name


def run_cassette(run_id: int) -> Cassette | None:
    """The run's recorded provider answers as a cassette; None when the run was not recorded."""
    cassette = Cassette()
    for call, answer in enumerate(ModelAnswer.objects.filter(run_id=run_id).order_by("pk"), 1):
        entry = {"key": answer.key, "call": call, "provider": answer.provider}
        cassette.keep(
            answer.key, {**entry, "path": answer.path, "status": answer.status, "body": answer.body}
        )
    return cassette if cassette.entries else None


def _task_entry(run: Run, name: str, recorded: bool) -> dict[str, Any]:
    seen = run_observe(run.pk, seconds=0.0)
    expect: dict[str, Any] = {"outcome": run.status}
    if run.status == RunStatus.ESCALATED and seen.cause:
        expect["cause"] = seen.cause
    if seen.tools:
        expect["tools"] = {"order": seen.tools}
    expect["max_steps"] = seen.steps
    entry: dict[str, Any] = {"name": name, "text": run.task.title}
    if run.task.description:
        entry["description"] = run.task.description
    # "" planned with the deployment's default: the provider that answered the planning call.
    planner = run.task.planner or (
        LlmCall.objects.filter(run=run, purpose=LlmCall.Purpose.PLAN)
        .order_by("pk")
        .values_list("provider", flat=True)
        .first()
        or ""
    )
    if recorded and planner in PLANNERS and planner not in ("manual", "playbook"):
        # The recorded answers plan it again: the task keeps the options its prompt was made of.
        entry["planner"] = planner
        entry["model"] = run.task.model
        entry["mode"] = run.task.mode or "auto"
        entry["max_replans"] = run.task.max_replans
    else:
        entry["planner"] = "manual"
        entry["plan"] = run.current_plan.document if run.current_plan else None
    entry["expect"] = expect
    return entry


@transaction.atomic
def golden_task_save(*, run_id: int, suite_name: str) -> GoldenTask:
    """Append the run as a task of the suite (created when new).

    The suite's text is checked whole before it is saved: nothing is written on a problem.
    A recorded run's cassette is written beside the suite (``suite_cassettes``).
    """
    suite_name = suite_name.strip()
    if not SUITE_NAME.match(suite_name):
        raise GoldenError("A suite name is letters, digits, '.', '_' or '-' (at most 100).")
    run = Run.objects.select_related("task", "current_plan").get(pk=run_id)
    if run.status not in RUN_TERMINAL and run.status != RunStatus.ESCALATED:
        raise GoldenError("Only a finished run can become a golden task.")
    if run.current_plan is None or not run.current_plan.is_valid:
        raise GoldenError("This run has no valid plan to keep.")
    suite = EvalSuite.objects.select_for_update().filter(name=suite_name).first()
    try:
        data = parse_yaml(suite.text) if suite else {"name": suite_name, "tasks": []}
    except TextDataError as exc:
        raise GoldenError(f"The suite {suite_name} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list):
        raise GoldenError(f"The suite {suite_name} has no task list to add to.")
    names = {t.get("name") for t in data["tasks"] if isinstance(t, dict)}
    name = f"run-{run.pk}"
    if name in names:
        raise GoldenError(f"Run {run.pk} is already a task of {suite_name}.")
    cassette = run_cassette(run.pk)
    data["tasks"].append(_task_entry(run, name, recorded=cassette is not None))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        suite_parse(text)
    except SuiteError as exc:
        raise GoldenError(f"The suite would not be valid: {'; '.join(exc.problems)}") from None
    tape = suite_cassettes(suite_name) / f"{name}.json" if cassette is not None else None
    if cassette is not None and tape is not None:
        try:
            cassette.save(tape)
        except OSError as exc:
            raise GoldenError(f"The run's cassette cannot be written: {exc}") from None
    if suite is None:
        suite = EvalSuite.objects.create(name=suite_name, text=text)
    else:
        suite.text = text
        suite.save(update_fields=["text", "updated_at"])
    return GoldenTask(suite, name, tape)

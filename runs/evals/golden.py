"""From a finished run to a golden task: its task, the plan that ran and how it ended."""

from __future__ import annotations

import re
from typing import Any

import yaml
from django.db import transaction

from runs.evals.observe import run_observe
from runs.evals.suite import SuiteError, suite_parse
from runs.models import EvalSuite, Run, RunStatus
from runs.statemachine import RUN_TERMINAL
from runs.textdata import TextDataError, parse_yaml

SUITE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class GoldenError(ValueError):
    """The run cannot become a golden task (not finished, no plan, a bad suite name)."""


def _task_entry(run: Run, name: str) -> dict[str, Any]:
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
    entry["planner"] = "manual"
    entry["plan"] = run.current_plan.document if run.current_plan else None
    entry["expect"] = expect
    return entry


@transaction.atomic
def golden_task_save(*, run_id: int, suite_name: str) -> tuple[EvalSuite, str]:
    """Append the run as a task of the suite (created when new); returns it and the task name.

    The suite's text is checked whole before it is saved: nothing is written on a problem.
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
    data["tasks"].append(_task_entry(run, name))
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    try:
        suite_parse(text)
    except SuiteError as exc:
        raise GoldenError(f"The suite would not be valid: {'; '.join(exc.problems)}") from None
    if suite is None:
        suite = EvalSuite.objects.create(name=suite_name, text=text)
    else:
        suite.text = text
        suite.save(update_fields=["text", "updated_at"])
    return suite, name

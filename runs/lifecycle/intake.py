"""What a submission must satisfy before anything is created, whoever submits it.

The API, the new-run page and the commands refuse the same input for the same
reason, because they ask these checks rather than each writing its own rule: a
run's ``max_parallel`` range, and a task for a planner (a title, options that can
work, a planner this deployment can use now).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from runs.planning.availability import planner_require
from runs.planning.options import PlannerOptions, default_options

# How many of a run's independent steps may run at the same time (the API's and forms' range).
MAX_PARALLEL_MIN = 1
MAX_PARALLEL_MAX = 256


class MaxParallelError(ValueError):
    """A ``max_parallel`` outside ``MAX_PARALLEL_MIN``..``MAX_PARALLEL_MAX``."""

    rule = f"must be between {MAX_PARALLEL_MIN} and {MAX_PARALLEL_MAX}"

    def __init__(self, value: int) -> None:
        super().__init__(f"max_parallel {self.rule}, not {value}")
        self.value = value


class TaskTitleMissing(ValueError):
    """A task for a planner with no title: the planner would have nothing to plan."""


def max_parallel_check(value: int | None) -> int:
    """``value``, or the deployment's default when it is None; ``MaxParallelError`` out of range."""
    if value is None:
        return int(settings.PLANNERWEB_DEFAULT_MAX_PARALLEL)
    if not MAX_PARALLEL_MIN <= value <= MAX_PARALLEL_MAX:
        raise MaxParallelError(value)
    return value


def task_title_check(title: str) -> str:
    """The title without surrounding blanks; ``TaskTitleMissing`` when nothing is left."""
    title = title.strip()
    if not title:
        raise TaskTitleMissing("A task for a planner needs a title.")
    return title


def planner_task_check(*, title: str, **options: Any) -> tuple[str, PlannerOptions]:
    """The task's title and resolved planner options, checked in the order a caller reports them.

    1. the title (``TaskTitleMissing``);
    2. the options against the deployment's defaults (``PlannerOptionsError``);
    3. the planner they name must be usable here (``PlannerUnavailable``, saying what to set).
    """
    title = task_title_check(title)
    resolved = default_options(**options)
    planner_require(resolved.planner)
    return title, resolved

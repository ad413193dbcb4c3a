"""The checks every way of submitting shares: max_parallel's range, a task for a planner."""

from __future__ import annotations

from typing import Any

import pytest

from runs.lifecycle.intake import (
    MaxParallelError,
    TaskTitleMissing,
    max_parallel_check,
    planner_task_check,
)
from runs.lifecycle.planning import run_submit_task
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Task
from runs.planning.availability import PlannerUnavailable
from runs.planning.options import PlannerOptionsError

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", [0, -1, 257])
def test_both_submission_services_refuse_max_parallel_out_of_range_and_write_nothing(
    value: int,
) -> None:
    with pytest.raises(MaxParallelError, match=f"between 1 and 256, not {value}"):
        run_submit_plan(title="t", document={"steps": []}, submitted_by=None, max_parallel=value)
    with pytest.raises(MaxParallelError):
        run_submit_task(title="t", submitted_by=None, planner="playbook", max_parallel=value)
    assert not Task.objects.exists() and not Run.objects.exists()


def test_no_max_parallel_takes_the_deployments_default(settings: Any) -> None:
    settings.PLANNERWEB_DEFAULT_MAX_PARALLEL = 5
    assert max_parallel_check(None) == 5
    assert (max_parallel_check(1), max_parallel_check(256)) == (1, 256)


@pytest.mark.usefixtures("no_openai_key")
def test_a_task_for_a_planner_is_checked_title_first_then_options_then_availability() -> None:
    with pytest.raises(TaskTitleMissing):
        planner_task_check(title=" \t", planner="openai", mode="sideways")
    with pytest.raises(PlannerOptionsError):
        planner_task_check(title="t", planner="openai", mode="sideways")
    with pytest.raises(PlannerUnavailable, match="set OPENAI_API_KEY") as caught:
        planner_task_check(title="t", planner="openai")
    assert caught.value.planner == "openai"
    title, options = planner_task_check(title="  Back up prod.db ", planner="playbook")
    assert (title, options.planner) == ("Back up prod.db", "playbook")

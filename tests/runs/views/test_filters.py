"""The runs list's filters: planner (hand-written or a planner's name) and what counts as filtered."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.models import Run, Task
from runs.selectors import HAND_WRITTEN
from runs.views.filters import RunFilterForm

pytestmark = pytest.mark.django_db


def run_of(title: str, planner: str = "") -> Run:
    return Run.objects.create(task=Task.objects.create(title=title, planner=planner))


def listed(user: User, query: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    return response.content.decode()


def test_the_planner_filter_tells_hand_written_runs_from_planned_ones(operator: User) -> None:
    run_of("by hand")
    run_of("from the playbook", planner="playbook")
    run_of("from openai", planner="openai")
    html = listed(operator, f"planner={HAND_WRITTEN}")
    assert "by hand" in html and "from the playbook" not in html and "from openai" not in html
    html = listed(operator, "planner=playbook")
    assert "from the playbook" in html and "by hand" not in html and "from openai" not in html


def test_a_hand_written_plan_naming_a_replanner_still_counts_as_hand_written(
    operator: User, noop_tool: Any
) -> None:
    from runs.lifecycle.submit import run_submit_plan

    doc = {"steps": [{"id": "a", "action": "noop"}]}
    run_submit_plan(
        title="curated", document=doc, submitted_by=None, replanner={"planner": "playbook"}
    )
    run_of("from the playbook", planner="playbook")
    html = listed(operator, f"planner={HAND_WRITTEN}")
    assert "curated" in html and "from the playbook" not in html
    html = listed(operator, "planner=playbook")
    assert "from the playbook" in html and "curated" not in html


def test_an_unknown_planner_is_reported_and_ignored_not_a_500(operator: User) -> None:
    run_of("by hand")
    html = listed(operator, "planner=nonsense")
    assert "by hand" in html


def test_no_filter_chosen_means_no_filter() -> None:
    form = RunFilterForm({"q": "", "status": "", "planner": ""})
    assert form.is_valid()
    assert form.filters() == {}
    form = RunFilterForm({"planner": "openai", "status": "failed"})
    assert form.is_valid()
    assert form.filters() == {"planner": "openai", "statuses": ["failed"]}


@pytest.mark.postgres
def test_text_search_can_use_the_trigram_index_on_postgresql() -> None:
    from django.db import connection

    from runs.models import Task
    from runs.selectors import run_search

    run_of("deploy shard 42")
    Task.objects.bulk_create([Task(title=f"migrate tenant {i:05d}") for i in range(3000)])
    # The search's title condition, alone: which run the planner starts from depends on
    # the tables' sizes; whether the title can be found by index does not.
    search = run_search(text="shard 4")
    assert [r.task.title for r in search] == ["deploy shard 42"]
    assert 'UPPER("runs_task"."title"::text) LIKE UPPER(' in str(search.query)
    sql, params = Task.objects.filter(title__icontains="shard 4").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_task")  # these rows, not what earlier tests left
        cursor.execute("SET LOCAL enable_seqscan = off")  # still a small table
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "runs_task_title_trgm" in plan, plan

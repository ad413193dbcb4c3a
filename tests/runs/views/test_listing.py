"""The runs list: newest first, filters, pages, and the table htmx refreshes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Tool
from tests.runs.views.conftest import VALID_PLAN, client_for

pytestmark = pytest.mark.django_db


def test_the_run_list_shows_runs_newest_first_with_status_submitter_and_steps(
    noop_tool: Tool, operator: User, reviewer: User
) -> None:
    older = run_submit_plan(title="Older task", document=VALID_PLAN, submitted_by=operator)
    newer = run_submit_plan(
        title="Newer task", document={"steps": [{"id": "x", "action": "nope"}]}, submitted_by=None
    )
    page = client_for(reviewer).get(reverse("runs:list")).content.decode()
    assert page.index("Newer task") < page.index("Older task")
    assert "status-failed" in page and "status-queued" in page
    assert "olivia" in page
    assert "0/2" in page  # the older run: nothing succeeded yet, two main steps
    assert newer.stop_reason.startswith("plan v1 is invalid (1 problem)")
    assert "plan v1 is invalid (1 problem)" in page
    assert reverse("runs:detail", args=[older.pk]) in page


def test_the_run_list_filters_by_status(noop_tool: Tool, operator: User) -> None:
    run_submit_plan(title="Queued one", document=VALID_PLAN, submitted_by=operator)
    run_submit_plan(
        title="Failed one", document={"steps": [{"id": "x", "action": "nope"}]}, submitted_by=None
    )
    page = client_for(operator).get(reverse("runs:list"), {"status": "failed"}).content.decode()
    assert "Failed one" in page and "Queued one" not in page


def test_bad_list_parameters_show_every_run_instead_of_an_error(
    queued_run: Run, operator: User
) -> None:
    client = client_for(operator)
    response = client.get(reverse("runs:list"), {"status": "exploded", "page": "-3"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Two hellos" in page
    assert "Status: Select a valid choice. exploded is not one of the available choices." in page
    assert "(ignored)" in page
    assert client.get(reverse("runs:list"), {"page": "lots"}).status_code == 200
    assert client.get(reverse("runs:list"), {"page": "99999"}).status_code == 200


def test_the_run_list_pages_by_fifty(noop_tool: Tool, operator: User) -> None:
    for i in range(51):
        run_submit_plan(title=f"Task {i:02d}", document=VALID_PLAN, submitted_by=operator)
    client = client_for(operator)
    first = client.get(reverse("runs:list")).content.decode()
    second = client.get(reverse("runs:list"), {"page": 2}).content.decode()
    assert "Task 50" in first and "Task 00" not in first
    assert "Task 00" in second and "page 2 of 2" in second


def _titles(response: Any) -> list[str]:
    return [run.task.title for run in response.context["page"].object_list]


@pytest.fixture
def three_runs(noop_tool: Tool, operator: User, reviewer: User) -> list[Run]:
    """Two by olivia (one failed), one by rob made two days ago."""
    from datetime import timedelta

    from django.utils import timezone

    a = run_submit_plan(title="Migrate users", document=VALID_PLAN, submitted_by=operator)
    b = run_submit_plan(
        title="Broken deploy",
        document={"steps": [{"id": "x", "action": "nope"}]},
        submitted_by=operator,
    )
    c = run_submit_plan(title="Old migration", document=VALID_PLAN, submitted_by=reviewer)
    Run.objects.filter(pk=c.pk).update(created_at=timezone.now() - timedelta(days=2))
    return [a, b, c]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["Broken deploy", "Migrate users", "Old migration"]),
        ({"status": "failed"}, ["Broken deploy"]),
        ({"submitter": "rob"}, ["Old migration"]),
        ({"submitter": "olivia", "status": "queued"}, ["Migrate users"]),
        ({"q": "MIGRAT"}, ["Migrate users", "Old migration"]),
        ({"q": "deploy"}, ["Broken deploy"]),
    ],
)
def test_the_run_list_filters_by_status_submitter_and_search(
    params: dict[str, str], expected: list[str], three_runs: list[Run], operator: User
) -> None:
    response = client_for(operator).get(reverse("runs:list"), params)
    assert sorted(_titles(response)) == expected


def test_the_run_list_finds_a_run_by_its_number(three_runs: list[Run], operator: User) -> None:
    response = client_for(operator).get(reverse("runs:list"), {"q": f"#{three_runs[1].pk}"})
    assert _titles(response) == ["Broken deploy"]


def test_the_run_list_filters_by_an_inclusive_date_range(
    three_runs: list[Run], operator: User
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.now().date()
    client = client_for(operator)
    only_today = client.get(reverse("runs:list"), {"created_from": today.isoformat()})
    assert sorted(_titles(only_today)) == ["Broken deploy", "Migrate users"]
    two_days_ago = (today - timedelta(days=2)).isoformat()
    that_day = client.get(
        reverse("runs:list"), {"created_from": two_days_ago, "created_to": two_days_ago}
    )
    assert _titles(that_day) == ["Old migration"]


def test_a_bad_date_range_is_reported_and_ignored(three_runs: list[Run], operator: User) -> None:
    client = client_for(operator)
    backwards = client.get(
        reverse("runs:list"), {"created_from": "2030-01-02", "created_to": "2030-01-01"}
    )
    assert "The end date is before the start date." in backwards.content.decode()
    assert _titles(backwards) == []  # the valid half (from 2030) still applies
    garbage = client.get(reverse("runs:list"), {"created_from": "yesterday-ish"})
    assert garbage.status_code == 200
    assert "Enter a valid date." in garbage.content.decode()
    assert len(_titles(garbage)) == 3


def test_pager_links_keep_the_filters(noop_tool: Tool, operator: User) -> None:
    for i in range(51):
        run_submit_plan(title=f"Task {i:02d}", document=VALID_PLAN, submitted_by=operator)
    page = client_for(operator).get(reverse("runs:list"), {"submitter": "olivia"}).content.decode()
    assert "?submitter=olivia&amp;page=2" in page


def test_an_htmx_request_gets_only_the_table_that_refreshes_itself(
    three_runs: list[Run], reviewer: User
) -> None:
    client = client_for(reviewer)
    response = client.get(
        reverse("runs:list"), {"status": "queued"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="runs-table"')
    assert "<html" not in page
    assert 'hx-get="/?status=queued"' in page and 'hx-trigger="runs-changed"' in page
    full = client.get(reverse("runs:list")).content.decode()
    assert "<html" in full and "runs/list.js" in full and "htmx-2.min.js" in full


def test_the_list_counts_a_rolled_back_runs_steps_as_its_page_does(
    noop_tool: Tool, operator: User
) -> None:
    run = run_submit_plan(title="Rolled back", document=VALID_PLAN, submitted_by=operator)
    run.steps.filter(phase="main").update(status="rolled_back")
    Run.objects.filter(pk=run.pk).update(status="rolled_back")
    client = client_for(operator)
    listing = client.get(reverse("runs:list")).content.decode()
    detail = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "<span data-progress>2/2</span> steps finished" in detail
    assert '<td class="num steps">2/2<span class="outcome-bar"' in listing
    # Rolled back, not succeeded: the bar says so on both pages, with the same words.
    bar = 'aria-label="2 steps: 2 rolled back"'
    assert bar in listing and bar in detail and "seg-succeeded" not in listing

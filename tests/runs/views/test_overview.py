"""The overview page: four small plots from the database, drawn server-side as SVG."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from reviews.models import ReviewItem
from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Step, Tool
from runs.overview import Series, overview_series
from runs.views.overview import HEIGHT, plot
from tests.runs.views.conftest import client_for

pytestmark = pytest.mark.django_db


def finished_run(steps: list[tuple[str, str]]) -> Run:
    """A run whose main steps finished as given: (status, verdict) each."""
    plan = {"steps": [{"id": f"s{i}", "action": "noop"} for i in range(len(steps))]}
    run = run_submit_plan(title="t", document=plan, submitted_by=None)
    now = timezone.now()
    for i, (status, verdict) in enumerate(steps):
        Step.objects.filter(run=run, key=f"s{i}").update(
            status=status, verdict=verdict, started_at=now, finished_at=now
        )
    return run


def test_the_figures_of_today_come_from_steps_verdicts_and_escalations(noop_tool: Tool) -> None:
    finished_run([("succeeded", "pass"), ("succeeded", "warn"), ("failed", "fail")])
    escalated = finished_run([("succeeded", "")])
    ReviewItem.objects.create(run=escalated, kind="escalation", cause="evaluator_fail")
    steps, success, disagreement, escalations = overview_series(days=7)
    assert steps.latest == 2.0  # 4 started steps over 2 runs
    assert success.latest == pytest.approx(75.0)  # 3 of 4 finished steps succeeded
    assert disagreement.latest == pytest.approx(200 / 3)  # warn and fail of 3 judged
    assert escalations.latest == 0.5  # one escalation over two runs
    assert len(steps.values) == 7 and steps.values[:-1] == [None] * 6


def test_a_plot_breaks_its_line_where_a_day_has_no_figure() -> None:
    day = timezone.now().date()
    days = [day - timedelta(days=i) for i in range(5, -1, -1)]
    drawn = plot(Series("x", "%", days, [1.0, 2.0, None, 4.0, None, 2.0], "why"))
    assert len(drawn.lines) == 1 and len(drawn.lines[0].split()) == 2
    assert len(drawn.dots) == 2 and drawn.top == 4.0
    assert drawn.dots[0][1] == 4  # the highest value touches the top padding
    assert all(0 <= y <= HEIGHT for _, y in drawn.dots)


def test_the_page_shows_four_svg_plots_to_any_role_and_nothing_to_others(
    noop_tool: Tool, reviewer: User, outsider: User
) -> None:
    finished_run([("succeeded", "pass"), ("failed", "")])
    url = reverse("runs:overview")
    page = client_for(reviewer).get(url).content.decode()
    assert page.count("<svg viewBox") == 4 and "<polyline" not in page  # one day: dots
    assert len(re.findall(r"<circle ", page)) == 3  # steps, success; no verdict, no escalation
    assert 'data-series="Tool success rate"' in page and "<span data-latest>50.0</span>" in page
    assert "cdn" not in page.lower()
    assert client_for(outsider).get(url).status_code == 403
    assert client_for(None).get(url).status_code == 302  # to the login page

"""Triage in the queue: risk, submitter, age and SLA columns, sorts and filters, in the page and the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from reviews.models import ReviewItem
from runs.lifecycle.escalations import escalation_open, step_gate_open
from runs.models import Run, Step
from tests.reviews.test_views import client_for
from tests.runs.api.conftest import api_as

pytestmark = pytest.mark.django_db


def rows(html: str) -> list[int]:
    import re

    return [int(i) for i in re.findall(r'<tr data-item-id="(\d+)"', html)]


def test_the_queue_shows_risk_submitter_age_and_sla_for_each_item(
    three: dict[str, ReviewItem], reviewer: User
) -> None:
    html = client_for(reviewer).get("/reviews/").content.decode()
    high, low = three["high"].pk, three["low"].pk
    high_row = html[html.index(f'data-item-id="{high}"') :].split("</tr>")[0]
    assert 'data-risk="high"' in high_row and "data-risk-sensitive" in high_row
    assert "data-risk-production" in high_row and "conf. 0.40" in high_row
    assert "<td data-submitter>olivia</td>" in high_row and "due in 4\xa0hours" in high_row
    low_row = html[html.index(f'data-item-id="{low}"') :].split("</tr>")[0]
    assert 'data-risk="low"' in low_row and "data-risk-sensitive" not in low_row
    assert "data-overdue" in low_row and "overdue</span> by 1\xa0hour" in low_row
    assert "3\xa0hours" in low_row  # its age
    assert f">Review {high}</a>" in html  # a link you can hit, not one character
    # The default order: overdue first, then soonest due.
    assert rows(html)[0] == low and rows(html)[-1] == high


def test_the_queue_sorts_and_filters_by_risk_submitter_and_sensitive_tools(
    three: dict[str, ReviewItem], reviewer: User
) -> None:
    client = client_for(reviewer)
    ids = {name: item.pk for name, item in three.items()}

    def page(**params: str) -> list[int]:
        response = client.get("/reviews/", params)
        assert response.status_code == 200
        return rows(response.content.decode())

    assert page(sort="risk") == [ids["high"], ids["medium"], ids["low"]]
    assert page(sort="oldest")[0] == ids["low"] and page(sort="newest")[-1] == ids["low"]
    assert page(sort="submitter")[0] == ids["medium"]  # "ada" before "olivia"
    assert page(risk="high") == [ids["high"]]
    assert page(risk="medium") == [ids["medium"]]
    assert page(risk="low") == [ids["low"]]
    assert page(sensitive="1") == [ids["high"]]
    assert page(submitter="ada") == [ids["medium"]]
    assert page(submitter="nobody-at-all") == []
    # A bad sort or risk is ignored with a warning, never a 500.
    response = client.get("/reviews/", {"sort": "chaos", "risk": "extreme"})
    html = response.content.decode()
    assert response.status_code == 200 and len(rows(html)) == 3
    assert "Sort must be one of" in html and "Risk must be one of" in html


def test_the_queue_page_costs_the_same_queries_for_one_item_or_fifty(
    three: dict[str, ReviewItem],
    reviewer: User,
    submit: Callable[..., Run],
    plan_doc: dict,
) -> None:
    client = client_for(reviewer)
    client.get("/reviews/")
    with CaptureQueriesContext(connection) as few:
        client.get("/reviews/", {"sort": "risk"})
    for _ in range(6):
        submit(plan_doc)
    with CaptureQueriesContext(connection) as many:
        client.get("/reviews/", {"sort": "risk"})
    assert len(few) == len(many) <= 10, [q["sql"][:120] for q in many.captured_queries]


def test_the_queue_api_has_the_same_columns_sorts_and_filters(
    three: dict[str, ReviewItem], reviewer: User
) -> None:
    api = api_as(reviewer)
    body = api.get("/reviews", {"sort": "risk"}).json()
    assert [i["id"] for i in body["items"]] == [three[n].pk for n in ("high", "medium", "low")]
    high, medium, low = body["items"]
    assert (high["risk"], high["risk_score"], high["sensitive"], high["production"]) == (
        "high",
        5,
        True,
        True,
    )
    assert high["min_confidence"] == 0.4 and high["submitter"] == "olivia"
    assert (medium["risk"], medium["submitter"], medium["production"]) == ("medium", "ada", True)
    assert (low["sla"], high["sla"]) == ("overdue", "due")
    assert low["age_seconds"] >= 3 * 3600 and high["cause_label"]
    assert [i["id"] for i in api.get("/reviews", {"risk": "low"}).json()["items"]] == [
        three["low"].pk
    ]
    assert [i["id"] for i in api.get("/reviews", {"submitter": "ada"}).json()["items"]] == [
        three["medium"].pk
    ]
    assert len(api.get("/reviews", {"sensitive": "true"}).json()["items"]) == 1
    detail = api.get(f"/reviews/{three['high'].pk}").json()
    assert detail["risk"] == "high" and detail["sla"] == "due"
    for bad in ({"sort": "chaos"}, {"risk": "extreme"}):
        response = api.get("/reviews", bad)
        assert response.status_code == 422
        assert response.json()["fields"][0]["field"] == next(iter(bad))


def test_a_step_gate_page_shows_the_results_of_the_steps_the_gated_step_depends_on(
    held: ReviewItem, reviewer: User
) -> None:
    Step.objects.filter(plan=held.plan, key="read").update(
        status="succeeded", result={"rows": 42, "checked": "backup-7"}, verdict="pass"
    )
    ship = Step.objects.get(plan=held.plan, key="ship")
    gate = step_gate_open(step_id=ship.pk, threshold=0.6)
    html = client_for(reviewer).get(f"/reviews/{gate.pk}/").content.decode()
    section = html[html.index("data-upstream") :]
    assert "Results the gated step depends on" in section
    assert 'data-upstream-step="read"' in section and "backup-7" in section
    assert "&quot;rows&quot;: 42" in section and "pass" in section
    assert 'data-upstream-step="ship"' not in section  # only what it depends on
    # A plan approval shows no such section.
    assert "data-upstream" not in client_for(reviewer).get(f"/reviews/{held.pk}/").content.decode()


@pytest.mark.parametrize(
    ("cause", "label"),
    [
        ("no_playbook_match", "No stored playbook matches the task"),
        ("planner_not_configured", "The planner is not configured (API key not set)"),
        ("planner_unavailable", "The planner&#x27;s model call failed"),
        ("invalid_planner_output", "Planner output still invalid after repair"),
    ],
)
def test_escalation_causes_are_named_precisely_with_a_label(
    stuck: Callable[..., ReviewItem], reviewer: User, cause: str, label: str
) -> None:
    item = stuck(cause)
    client = client_for(reviewer)
    queue = client.get("/reviews/").content.decode()
    assert f'<small data-cause="{cause}">({label})</small>' in queue
    page = client.get(f"/reviews/{item.pk}/").content.decode()
    assert f'data-cause="{cause}">({label})' in page
    body: dict[str, Any] = api_as(reviewer).get(f"/reviews/{item.pk}").json()
    assert body["cause"] == cause and body["cause_label"].replace("'", "&#x27;") == label


def test_an_unknown_cause_is_refused_when_an_escalation_opens(held: ReviewItem) -> None:
    with pytest.raises(ValueError, match="unknown escalation cause"):
        escalation_open(run_id=held.run_id, cause="something_vague", reason="?")

"""The decision panel: at the top, refusals next to their field with the input kept, then the next item."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User

from reviews.models import ReviewItem
from runs.models import Run
from tests.reviews.test_views import client_for, decision_form

pytestmark = pytest.mark.django_db


def test_a_refused_approval_keeps_ticks_and_reason_and_says_why_next_to_the_checklist(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    page = client.get(f"/reviews/{held.pk}/").content.decode()
    # The panel comes before the plan's steps.
    assert page.index('id="decide"') < page.index("<h2>Plan v")
    response = client.post(
        f"/reviews/{held.pk}/approve/",
        {**form, "checklist": ["0"], "reason": "looks right to me", "next": "1"},
    )
    html = response.content.decode()
    assert response.status_code == 409
    assert 'data-field-error="checklist"' in html and "Tick every checklist item first" in html
    assert 'name="checklist" value="0" checked' in html  # the tick survived
    assert ">looks right to me</textarea>" in html  # the reason too
    assert "data-next checked" in html
    assert ReviewItem.objects.get(pk=held.pk).status == "open"


def test_a_rejection_without_a_reason_is_refused_next_to_the_reason_field(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    response = client.post(f"/reviews/{held.pk}/reject/", {**form, "reason": "  "})
    html = response.content.decode()
    assert response.status_code == 409, html[:500]
    assert 'data-field-error="reason"' in html and 'aria-invalid="true"' in html
    assert ReviewItem.objects.get(pk=held.pk).status == "open"


def test_decide_and_go_to_the_next_item_opens_the_next_open_one_then_the_queue(
    held: ReviewItem,
    reviewer: User,
    submit: Callable[..., Run],
    plan_doc: dict,
) -> None:
    other = ReviewItem.objects.get(run=submit(plan_doc))
    client = client_for(reviewer)
    form = decision_form(client, held)
    response = client.post(
        f"/reviews/{held.pk}/reject/", {**form, "reason": "not now", "next": "1"}
    )
    assert response.status_code == 302 and response["Location"] == f"/reviews/{other.pk}/"
    form = decision_form(client, other)
    response = client.post(
        f"/reviews/{other.pk}/reject/", {**form, "reason": "nor this", "next": "1"}
    )
    assert response.status_code == 302 and response["Location"] == "/reviews/"

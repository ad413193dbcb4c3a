"""Who may see what: every runs page for anonymous visitors, each role, and outsiders."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import Run, RunStatus
from tests.runs.views.conftest import VALID_PLAN, client_for

pytestmark = pytest.mark.django_db


PAGES = ["runs:list", "runs:new", "runs:detail", "runs:transcript", "runs:tools"]


def url_of(name: str, run: Run) -> str:
    with_run = ("runs:detail", "runs:transcript", "runs:cancel")
    return reverse(name, args=[run.pk]) if name in with_run else reverse(name)


@pytest.mark.parametrize("name", [*PAGES, "runs:cancel"])
def test_anonymous_visitors_are_sent_to_the_login_page(name: str, queued_run: Run) -> None:
    url = url_of(name, queued_run)
    method = Client().post if name == "runs:cancel" else Client().get
    response = method(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("name", [*PAGES, "runs:cancel"])
def test_a_user_without_a_role_gets_403_everywhere(
    name: str, queued_run: Run, outsider: User
) -> None:
    client = client_for(outsider)
    url = url_of(name, queued_run)
    response = client.post(url) if name == "runs:cancel" else client.get(url)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("reviewer", {**{name: 200 for name in PAGES}, "runs:new": 403}),
        ("operator", {name: 200 for name in PAGES}),
        ("admin_user", {name: 200 for name in PAGES}),
    ],
)
def test_each_role_sees_the_pages_its_role_allows(
    who: str, expected: dict[str, int], queued_run: Run, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(who))
    seen = {name: client.get(url_of(name, queued_run)).status_code for name in PAGES}
    assert seen == expected


def test_a_reviewer_can_neither_submit_a_run_nor_cancel_one(
    queued_run: Run, reviewer: User
) -> None:
    client = client_for(reviewer)
    submitted = client.post(reverse("runs:new"), {"title": "x", "plan": json.dumps(VALID_PLAN)})
    cancelled = client.post(reverse("runs:cancel", args=[queued_run.pk]))
    assert (submitted.status_code, cancelled.status_code) == (403, 403)
    assert Run.objects.count() == 1
    queued_run.refresh_from_db()
    assert queued_run.status == RunStatus.QUEUED


def test_the_nav_offers_new_run_to_operators_and_admin_to_staff_only(
    operator: User, reviewer: User, admin_user: User
) -> None:
    new_run, admin = reverse("runs:new"), reverse("admin:index")
    as_operator = client_for(operator).get(reverse("runs:list")).content.decode()
    as_reviewer = client_for(reviewer).get(reverse("runs:list")).content.decode()
    as_admin = client_for(admin_user).get(reverse("runs:list")).content.decode()
    assert new_run in as_operator and admin not in as_operator
    assert new_run not in as_reviewer and admin not in as_reviewer
    assert new_run in as_admin and admin in as_admin
    assert 'action="/accounts/logout/"' in as_reviewer


@pytest.mark.parametrize(
    ("method", "name"),
    [("get", "runs:cancel"), ("post", "runs:list"), ("post", "runs:detail"), ("put", "runs:new")],
)
def test_wrong_methods_get_405(method: str, name: str, queued_run: Run, operator: User) -> None:
    response = getattr(client_for(operator), method)(url_of(name, queued_run))
    assert response.status_code == 405


def test_an_unknown_run_is_404_on_the_detail_page_and_for_cancel(operator: User) -> None:
    client = client_for(operator)
    assert client.get(reverse("runs:detail", args=[999_999])).status_code == 404
    assert client.post(reverse("runs:cancel", args=[999_999])).status_code == 404

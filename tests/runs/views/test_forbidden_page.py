"""The 403 page says which role a page needs and which roles the user has."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.runs.views.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("who", "url", "needed", "held"),
    [
        ("operator", "reviews:queue", "reviewer", "operator"),
        ("reviewer", "runs:new", "operator", "reviewer"),
    ],
)
def test_a_user_refused_another_roles_page_sees_the_role_it_needs_and_their_own(
    request: pytest.FixtureRequest, who: str, url: str, needed: str, held: str
) -> None:
    user: User = request.getfixturevalue(who)
    response = client_for(user).get(reverse(url))
    assert response.status_code == 403
    page = " ".join(response.content.decode().split())
    assert f"needs the <strong>{needed}</strong> role" in page
    assert f"Your account has the <strong>{held}</strong> role" in page
    assert "no role" not in page


def test_a_user_with_no_role_is_told_they_have_none_and_what_the_page_needs(
    outsider: User,
) -> None:
    response = client_for(outsider).get(reverse("runs:list"))
    assert response.status_code == 403
    page = " ".join(response.content.decode().split())
    assert "Your account has no role" in page
    assert "<strong>operator</strong> or <strong>reviewer</strong>" in page

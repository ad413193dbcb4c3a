"""The 403 page says which role a page needs and which roles the user has."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.runs.views.conftest import client_for

pytestmark = pytest.mark.django_db


def test_an_operator_refused_a_reviewer_page_sees_the_reviewer_requirement_and_their_role(
    operator: User,
) -> None:
    response = client_for(operator).get(reverse("reviews:queue"))
    assert response.status_code == 403
    page = " ".join(response.content.decode().split())
    assert "needs the <strong>reviewer</strong> role" in page
    assert "Your account has the <strong>operator</strong> role" in page
    assert "no role" not in page


def test_a_reviewer_refused_an_operator_page_sees_the_operator_requirement(
    reviewer: User,
) -> None:
    response = client_for(reviewer).get(reverse("runs:new"))
    assert response.status_code == 403
    page = " ".join(response.content.decode().split())
    assert "needs the <strong>operator</strong> role" in page
    assert "Your account has the <strong>reviewer</strong> role" in page


def test_a_user_with_no_role_is_told_they_have_none_and_what_the_page_needs(
    outsider: User,
) -> None:
    response = client_for(outsider).get(reverse("runs:list"))
    assert response.status_code == 403
    page = " ".join(response.content.decode().split())
    assert "Your account has no role" in page
    assert "<strong>operator</strong> or <strong>reviewer</strong>" in page

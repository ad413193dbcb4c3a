"""The tokens page: create a token shown once, revoke your own, reachable with a role."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.models import ApiToken
from runs.tokens import api_token_create
from tests.runs.api.conftest import ApiClient

pytestmark = pytest.mark.django_db


def page_client(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_the_tokens_page_creates_a_token_and_shows_the_secret_only_in_that_response(
    reviewer: User,
) -> None:
    client = page_client(reviewer)
    created = client.post(reverse("runs:tokens"), {"name": "laptop"})
    assert created.status_code == 200
    secret = created.context["created"].plaintext
    assert secret in created.content.decode()
    assert created["Cache-Control"].startswith("max-age=0")
    later = client.get(reverse("runs:tokens")).content.decode()
    assert "laptop" in later and secret not in later
    assert ApiClient(secret).get("/runs").status_code == 200


def test_the_tokens_page_refuses_an_empty_name(reviewer: User) -> None:
    response = page_client(reviewer).post(reverse("runs:tokens"), {"name": " "})
    assert response.status_code == 422
    assert "Give the token a name" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_tokens_page_revokes_your_token_but_not_someone_elses(
    operator: User, reviewer: User
) -> None:
    mine = api_token_create(user=operator, name="mine")
    theirs = api_token_create(user=reviewer, name="theirs")
    client = page_client(operator)
    revoked = client.post(reverse("runs:token_revoke", args=[mine.token.pk]), follow=True)
    assert "revoked" in revoked.content.decode()
    other = client.post(reverse("runs:token_revoke", args=[theirs.token.pk]))
    assert other.status_code == 404
    assert ApiClient(mine.plaintext).get("/runs").status_code == 401
    assert ApiClient(theirs.plaintext).get("/runs").status_code == 200


def test_the_tokens_page_needs_a_role_and_is_linked_from_the_nav(
    outsider: User, reviewer: User
) -> None:
    assert page_client(None).get(reverse("runs:tokens")).status_code == 302
    assert page_client(outsider).get(reverse("runs:tokens")).status_code == 403
    assert page_client(outsider).post(reverse("runs:tokens"), {"name": "x"}).status_code == 403
    page = page_client(reviewer).get(reverse("runs:list")).content.decode()
    assert reverse("runs:tokens") in page

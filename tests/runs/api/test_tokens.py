"""Personal API tokens: the endpoints, the dashboard page and the ``api_token`` command."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from runs.models import ApiToken
from runs.tokens import api_token_create
from tests.runs.api.conftest import ApiClient, api_as

pytestmark = pytest.mark.django_db


def session_api(user: User) -> ApiClient:
    client = Client()
    client.force_login(user)
    return ApiClient(client=client)


# --------------------------------------------------------------------------- endpoints
def test_a_signed_in_user_creates_a_token_that_is_shown_once_and_works(operator: User) -> None:
    api = session_api(operator)
    created = api.post("/tokens", {"name": "CI pipeline"})
    assert created.status_code == 201
    body = created.json()
    secret = body["token"]
    assert body["name"] == "CI pipeline" and body["active"] is True
    assert secret.startswith(f"pw_{body['prefix']}_")
    listed = api.get("/tokens")
    assert [t["name"] for t in listed.json()] == ["CI pipeline"]
    assert secret not in listed.content.decode() and "token" not in listed.json()[0]
    assert ApiClient(secret).get("/runs").status_code == 200


def test_a_token_cannot_mint_another_token(operator: User) -> None:
    response = api_as(operator).post("/tokens", {"name": "more"})
    assert response.status_code == 403
    assert response.json()["code"] == "session_required"
    assert ApiToken.objects.count() == 1


@pytest.mark.parametrize("name", ["", "   ", "x" * 101])
def test_a_token_needs_a_sensible_name(name: str, operator: User) -> None:
    response = session_api(operator).post("/tokens", {"name": name})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "name"
    assert not ApiToken.objects.exists()


def test_users_list_and_revoke_only_their_own_tokens(operator: User, reviewer: User) -> None:
    mine = api_token_create(user=operator, name="mine")
    theirs = api_token_create(user=reviewer, name="theirs")
    api = ApiClient(mine.plaintext)
    assert [t["name"] for t in api.get("/tokens").json()] == ["mine"]
    assert api.delete(f"/tokens/{theirs.token.pk}").status_code == 404
    assert ApiClient(theirs.plaintext).get("/runs").status_code == 200
    assert api.delete(f"/tokens/{mine.token.pk}").status_code == 204
    assert api.get("/tokens").status_code == 401  # it revoked itself
    theirs_api = ApiClient(theirs.plaintext)
    assert theirs_api.delete(f"/tokens/{theirs.token.pk}").status_code == 204
    mine.token.refresh_from_db()
    assert mine.token.revoked_at is not None


# --------------------------------------------------------------------------- page
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


# --------------------------------------------------------------------------- command
def test_the_api_token_command_prints_a_working_token_once(operator: User) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("api_token", "olivia", "deploy bot", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert secret.startswith("pw_") and secret not in err.getvalue()
    assert ApiToken.objects.get().name == "deploy bot"
    assert ApiClient(secret).get("/runs").status_code == 200


def test_the_api_token_command_refuses_an_unknown_user(db: None) -> None:
    with pytest.raises(CommandError, match="no user"):
        call_command("api_token", "nobody", "x", stdout=io.StringIO())

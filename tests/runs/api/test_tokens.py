"""Personal API token endpoints: create once, list and revoke your own, never from a token."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.models import ApiToken
from runs.tokens import api_token_create
from tests.runs.api.conftest import ApiClient, api_as

pytestmark = pytest.mark.django_db


def session_api(user: User) -> ApiClient:
    client = Client()
    client.force_login(user)
    return ApiClient(client=client)


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

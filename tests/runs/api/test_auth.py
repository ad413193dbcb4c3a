"""API authentication: Bearer tokens (valid, revoked, wrong), sessions with CSRF, the role matrix."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.lifecycle.submit import run_submit_plan
from runs.models import ApiToken, Run, RunStatus, Tool
from runs.tokens import api_token_create, api_token_revoke
from tests.runs.api.conftest import VALID_PLAN, ApiClient, api_as

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(noop_tool: Tool, operator: User) -> Run:
    return run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)


# --------------------------------------------------------------------------- tokens
def test_a_valid_token_acts_as_its_user(operator: User, run: Run) -> None:
    response = api_as(operator).get(f"/runs/{run.pk}")
    assert response.status_code == 200
    assert response.json()["submitted_by"] == "olivia"


def test_the_secret_is_stored_only_as_a_hash(operator: User) -> None:
    new = api_token_create(user=operator, name="ci")
    row = ApiToken.objects.get(pk=new.token.pk)
    assert new.plaintext.startswith(f"pw_{row.prefix}_")
    assert row.secret_hash == hashlib.sha256(new.plaintext.encode()).hexdigest()
    stored = json.dumps(list(ApiToken.objects.values()), default=str)
    assert new.plaintext not in stored
    assert new.plaintext.split("_", 2)[2] not in stored


@pytest.mark.parametrize(
    "header",
    [
        "Bearer pw_000000000000_nope",
        "Bearer nonsense",
        "Bearer ",
        "Basic b2xpdmlhOnB3LW9saXZpYQ==",
        "Bearer pw_" + "a" * 500,
    ],
)
def test_a_wrong_or_malformed_token_gets_401_with_a_json_error(
    header: str, operator: User, run: Run
) -> None:
    response = Client().get("/api/runs", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_token_with_the_right_prefix_but_a_wrong_secret_is_refused(operator: User) -> None:
    new = api_token_create(user=operator, name="ci")
    forged = new.plaintext[:-4] + ("AAAA" if not new.plaintext.endswith("AAAA") else "BBBB")
    assert ApiClient(forged).get("/runs").status_code == 401
    assert ApiClient(new.plaintext).get("/runs").status_code == 200


def test_a_revoked_token_stops_working_at_once(operator: User) -> None:
    new = api_token_create(user=operator, name="ci")
    client = ApiClient(new.plaintext)
    assert client.get("/runs").status_code == 200
    api_token_revoke(user=operator, token_id=new.token.pk)
    assert client.get("/runs").status_code == 401


def test_a_token_of_a_deactivated_user_is_refused(operator: User) -> None:
    client = api_as(operator)
    operator.is_active = False
    operator.save()
    assert client.get("/runs").status_code == 401


def test_a_token_records_when_it_was_last_used(operator: User) -> None:
    new = api_token_create(user=operator, name="ci")
    assert new.token.last_used_at is None
    ApiClient(new.plaintext).get("/runs")
    new.token.refresh_from_db()
    assert new.token.last_used_at is not None


def test_a_token_carries_the_users_current_role(operator: User, run: Run) -> None:
    client = api_as(operator)
    operator.groups.clear()
    response = client.post(f"/runs/{run.pk}/cancel")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


# --------------------------------------------------------------------------- sessions + CSRF
def session_client(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def test_a_session_reads_without_csrf(operator: User, run: Run) -> None:
    assert session_client(operator).get("/api/runs").status_code == 200


def test_a_session_write_without_a_csrf_token_is_refused_and_changes_nothing(
    operator: User, run: Run
) -> None:
    response = session_client(operator).post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_a_session_write_with_the_csrf_token_goes_through(operator: User, run: Run) -> None:
    client = session_client(operator)
    client.get("/")  # the dashboard sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    response = client.post(f"/api/runs/{run.pk}/cancel", headers={"X-CSRFToken": token})
    assert response.status_code == 200
    assert response.json()["status"] == RunStatus.CANCELLED


def test_a_bearer_write_needs_no_csrf_even_with_csrf_checks_enforced(
    operator: User, run: Run
) -> None:
    token = api_token_create(user=operator, name="ci").plaintext
    client = ApiClient(token, client=Client(enforce_csrf_checks=True))
    assert client.post(f"/runs/{run.pk}/cancel").status_code == 200


def test_an_anonymous_write_gets_401_not_a_csrf_error(run: Run) -> None:
    response = Client(enforce_csrf_checks=True).post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 401


# --------------------------------------------------------------------------- role matrix
READS = [
    ("get", "/runs"),
    ("get", "/runs/{run}"),
    ("get", "/runs/{run}/plans"),
    ("get", "/runs/{run}/steps"),
    ("get", "/runs/{run}/events"),
    ("get", "/tools"),
    ("get", "/tools/noop"),
    ("get", "/tokens"),
]
OPERATE = [("post", "/tasks"), ("post", "/runs/{run}/cancel")]
STAFF = [
    ("post", "/tools"),
    ("patch", "/tools/noop"),
    ("put", "/tools/noop"),
    ("get", "/tools.yaml"),
    ("post", "/tools.yaml"),
    ("delete", "/tools/noop"),
]
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/tasks"): {"title": "t", "plan": VALID_PLAN},
    ("post", "/tools"): {
        "name": "hello",
        "kind": "python",
        "config": {"callable": "runs.tools.builtin.echo"},
    },
    ("patch", "/tools/noop"): {"description": "changed"},
    ("put", "/tools/noop"): {
        "name": "noop",
        "kind": "python",
        "config": {"callable": "runs.tools.builtin.noop"},
    },
    ("post", "/tools.yaml"): {
        "text": "tools:\n  - name: hi\n    script: {python: runs.tools.builtin.echo}\n"
    },
}


def call(client: ApiClient, method: str, path: str, run: Run) -> Any:
    url = path.replace("{run}", str(run.pk))
    if method in ("get", "delete"):
        return getattr(client, method)(url)
    return getattr(client, method)(url, BODIES.get((method, path), {}))


ALL = READS + OPERATE + STAFF


@pytest.mark.parametrize(("method", "path"), ALL)
def test_anonymous_callers_get_401_everywhere(method: str, path: str, run: Run) -> None:
    response = call(ApiClient(), method, path, run)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "path"), ALL)
def test_users_without_a_role_get_403_everywhere(
    method: str, path: str, run: Run, outsider: User
) -> None:
    client = ApiClient(api_token_create(user=outsider, name="x").plaintext)
    response = call(client, method, path, run)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        ("reviewer", set(READS)),
        ("operator", set(READS + OPERATE)),
        ("admin_user", set(ALL)),
    ],
)
def test_each_role_may_do_what_its_role_allows_and_nothing_else(
    who: str, allowed: set[tuple[str, str]], run: Run, request: pytest.FixtureRequest
) -> None:
    client = api_as(request.getfixturevalue(who))
    seen = {}
    for method, path in ALL:
        status = call(client, method, path, run).status_code
        seen[(method, path)] = status < 300 if status != 403 else False
    assert {k for k, ok in seen.items() if ok} == allowed

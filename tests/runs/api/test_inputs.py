"""Bad input at every API entry point is a 4xx with a message, never a 5xx; the role comes first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import User

from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, Task, Tool
from tests.runs.api.conftest import VALID_PLAN, ApiClient, api_as

pytestmark = pytest.mark.django_db

HUGE_INT = "goal: g\nsteps:\n- id: a\n  action: noop\n  params: {n: " + "9" * 5000 + "}\n"
DEEP_YAML = "a: " + "[" * 1500 + "]" * 1500
DEEP_JSON = "[" * 1500 + "]" * 1500
BOMB = "a: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdef", "bcdefg", strict=True)
)
BAD_TEXTS = {"huge_int": HUGE_INT, "deep_yaml": DEEP_YAML, "deep_json": DEEP_JSON, "bomb": BOMB}


@pytest.mark.parametrize("name", BAD_TEXTS)
def test_plan_text_beyond_the_limits_is_422_and_creates_nothing(
    name: str, operator: User, noop_tool: Tool
) -> None:
    response = api_as(operator).post("/tasks", {"title": "t", "plan": BAD_TEXTS[name]})
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "plan_syntax"
    assert not Task.objects.exists()


@pytest.mark.parametrize("name", BAD_TEXTS)
def test_a_tools_file_beyond_the_limits_is_422(name: str, admin_user: User) -> None:
    response = api_as(admin_user).post("/tools.yaml", {"text": BAD_TEXTS[name]})
    assert response.status_code == 422, response.content
    assert response.json()["code"] == "invalid_tools_file"


@pytest.mark.parametrize(
    "body",
    [
        '{"title": "t", "plan": {"steps": [], "n": ' + "9" * 5000 + "}}",
        '{"title": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"title": NaN}',
        '{"title": "t", "plan": {"goal": "\\u0000"}}',
        '{"title": "t", "plan": {"goal": "\\ud800"}}',
        '{"title": "t", "plan": {"steps": [{"id": "a", "action": "noop", "params": {"n": 1e999}}]}}',
        '{"title": "t", "max_parallel": 99999999999999999999999}',
        b'{"title": "\xff"}',
    ],
    ids=["huge-int", "deep", "nan", "nul", "surrogate", "infinity", "long-int", "not-utf8"],
)
def test_a_json_body_beyond_the_limits_is_422(body: Any, operator: User, noop_tool: Tool) -> None:
    response = api_as(operator).post("/tasks", body)
    assert response.status_code == 422, response.content
    assert response.json()["detail"]
    assert not Task.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "tools: []", "replace": 0}, "replace"),
        ({"text": "tools: []", "replace": "true"}, "replace"),
        ({"text": 5}, "text"),
    ],
)
def test_input_types_are_strict_as_the_schema_says(
    body: dict[str, Any], field: str, admin_user: User
) -> None:
    response = api_as(admin_user).post("/tools.yaml", body)
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["fields"]] == [field]


def test_a_single_valued_query_parameter_given_twice_is_422(operator: User) -> None:
    response = api_as(operator).get("/runs?q=a&q=b")
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "q"


MALFORMED = ["{", '{"bogus": 1, "title": 5}', json.dumps({"plan": "[" * 3000})]


@pytest.mark.parametrize("body", MALFORMED)
@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("reviewer", "post", "/tasks"),
        ("outsider", "post", "/tasks"),
        ("operator", "post", "/tools"),
        ("operator", "post", "/tools.yaml"),
        ("operator", "patch", "/tools/noop"),
        ("operator", "post", "/reviews/1/decide"),
        ("reviewer", "post", "/runs/1/retry"),
        ("operator", "post", "/runs/1/resume"),
        ("outsider", "post", "/tokens"),
    ],
)
def test_the_role_is_checked_before_the_body_is_read(
    role: str,
    method: str,
    path: str,
    body: str,
    request: pytest.FixtureRequest,
    noop_tool: Tool,
) -> None:
    api = api_as(request.getfixturevalue(role))
    response = getattr(api, method)(path, body)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "forbidden"
    assert not Run.objects.exists()


@pytest.mark.parametrize("body", MALFORMED)
def test_an_anonymous_client_gets_401_whatever_the_body(body: str) -> None:
    assert ApiClient().post("/tasks", body).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        '{"reason": "x", "n": ' + "9" * 5000 + "}",
        '{"reason": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"rollback": 0}',
        '{"reason": "\\u0000"}',
        "{",
    ],
    ids=["huge-int", "deep", "int-for-bool", "nul", "malformed"],
)
def test_a_cancel_body_beyond_the_limits_is_a_4xx(
    body: str, operator: User, noop_tool: Tool
) -> None:
    run = run_submit_plan(title="t", document=VALID_PLAN, submitted_by=operator)
    response = api_as(operator).post(f"/runs/{run.pk}/cancel", body)
    assert response.status_code in (400, 422), response.content
    assert Run.objects.get(pk=run.pk).status == run.status

"""Redaction end to end: a run seeded with secrets and personal data leaves none of them anywhere.

The run is planned through the real OpenAI SDK against a fake server on loopback,
executes real shell tools that echo secrets on stdout and stderr, fails, and
escalates; then every column of every table, the pages and the API responses are
searched for the raw values.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from reviews.models import ReviewItem
from runs.lifecycle.claim import run_execute
from runs.lifecycle.planning import run_submit_task
from runs.models import LlmCall, Plan, Run, RunStatus, Step, Tool, TranscriptEvent
from tests.runs.planning.providers.fake_llm import Answer, FakeLLM, openai_response, running

PLANNER_KEY = "pk-planner-Zq8Wm2Xv7Lr4Tn9Ys3"  # no known shape: caught as the configured key
LOCAL_KEY = "zz-local-key-value-4242"
EMAIL = "alice.liddell@example.com"
PHONE = "+1 (555) 010-2030"
OPENAI_KEY = "sk-live-4f8b2c9d1e7a6b5c3d2e1f0a"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_R4nd0mT0k3nV4lu3F0rT35t1ngAbCd"
STDOUT_EMAIL = "carol@example.net"
PASSWORD = "hunter2-Very-Secret"
EDIT_EMAIL = "dave.bowman@example.org"
ANTHROPIC = "sk-ant-api03-Qw3rTy9UiOp1AsDfGh"
PEM = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
RAW = [
    PLANNER_KEY,
    LOCAL_KEY,
    EMAIL,
    "010-2030",
    OPENAI_KEY,
    AWS_KEY,
    GITHUB,
    STDOUT_EMAIL,
    PASSWORD,
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
    EDIT_EMAIL,
    ANTHROPIC,
]


def cut(value: str) -> str:
    """``value`` for a double-quoted shell word, split so the tool's config never holds it whole."""
    return f'{value[:4]}""{value[4:]}'


# The tools print secrets of their own making: stdout, stderr (the error) and a PEM block.
ECHO = (
    'echo "to=$PARAM_TO key=$PARAM_KEY"; '
    f'echo "server {cut(AWS_KEY)} mail {cut(STDOUT_EMAIL)} password={cut(PASSWORD)}"; '
    "printf '%s\\n' " + " ".join(f'"{cut(line)}"' for line in PEM.splitlines())
)
# Fails its first call (the error quotes stderr), then succeeds: the retry's error is stored.
FLAKY = (
    "if [ -e tried ]; then echo ok; else touch tried; "
    f'echo "denied for {cut(STDOUT_EMAIL)} with token {cut(GITHUB)}" >&2; exit 3; fi'
)
# Succeeds, but its check fails: with no replans left the run escalates to a reviewer.
DENY = f'echo "no access for {cut(STDOUT_EMAIL)}"'


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    yield from running()


@pytest.fixture
def leaky_tools(db: None, tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"to": {"type": "string"}, "key": {}}}
    Tool.objects.create(
        name="echo",
        kind=Tool.Kind.SHELL,
        config={"shell": ECHO},
        parameters_schema=schema,
        idempotent=True,
        max_retries=0,
    )
    Tool.objects.create(
        name="flaky",
        kind=Tool.Kind.SHELL,
        config={"shell": FLAKY, "cwd": str(tmp_path)},
        parameters_schema={"type": "object"},
        idempotent=True,
        max_retries=1,
    )
    Tool.objects.create(
        name="deny",
        kind=Tool.Kind.SHELL,
        config={"shell": DENY},
        parameters_schema={"type": "object"},
        checks=[{"type": "contains", "text": "granted", "path": "stdout"}],
    )


def leaky_plan() -> dict[str, Any]:
    return {
        "goal": f"mail {EMAIL} (phone {PHONE}) with key {PLANNER_KEY}",
        "steps": [
            {"id": "a", "action": "echo", "params": {"to": EMAIL, "key": OPENAI_KEY}},
            {
                "id": "b",
                "action": "echo",
                "params": {"to": "{{ steps.a.result.stdout }}", "key": {"password": PASSWORD}},
                "depends_on": ["a"],
                "description": f"again for {EMAIL}",
            },
            {"id": "c", "action": "flaky", "params": {}, "depends_on": ["b"]},
            {"id": "e", "action": "deny", "params": {}, "depends_on": ["c"]},
        ],
        "rollback": [],
    }


def every_stored_text() -> Iterator[tuple[str, str]]:
    """(table, text) for every non-empty value of every row of every table."""
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # names from introspection
            for row in cursor.fetchall():
                for value in row:
                    if value is not None:
                        yield table, value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.django_db(transaction=True)
def test_a_run_seeded_with_secrets_and_personal_data_stores_and_shows_none_of_them(
    fake: FakeLLM,
    leaky_tools: None,
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    operator: Any,
    reviewer: Any,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", PLANNER_KEY)
    monkeypatch.setenv("PLANNERWEB_LOCAL_API_KEY", LOCAL_KEY)
    settings.PLANNERWEB_OPENAI_BASE_URL = fake.url + "/v1"
    settings.PLANNERWEB_PLANNER_SDK_RETRIES = 0
    settings.PLANNERWEB_HEARTBEAT_SECONDS = 0.05
    settings.PLANNERWEB_RETRY_BACKOFF_SECONDS = 0.01
    fake.queue(Answer(body=openai_response(json.dumps(leaky_plan()))))
    run = run_submit_task(
        title=f"notify {EMAIL}",
        description=f"call {PHONE}; keys {OPENAI_KEY} and {LOCAL_KEY}",
        submitted_by=operator,
        planner="openai",
        max_replans=0,
    )
    assert run_execute(run_id=run.pk) == RunStatus.ESCALATED

    # A reviewer edits the plan, with new secrets in it and in the reason; the run resumes.
    reviewer_client = Client()
    reviewer_client.force_login(reviewer)
    edit = {
        "steps": [{"id": "d", "action": "echo", "params": {"to": EDIT_EMAIL, "key": ANTHROPIC}}]
    }
    item = ReviewItem.objects.get(run=run)
    response = reviewer_client.post(
        f"/api/runs/{run.pk}/resume",
        {
            "action": "edit",
            "plan": edit,
            "reason": f"send to {EDIT_EMAIL} instead",
            "checklist": list(range(len(item.checklist))),
        },
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED

    # The run really went through every boundary with the secrets in play.
    assert LlmCall.objects.filter(run=run).exists()
    steps = {s.key: s for s in Step.objects.filter(run=run).order_by("plan__version")}
    assert steps["a"].status == steps["b"].status == "succeeded"
    assert steps["c"].status == "succeeded" and steps["e"].status == "failed"
    retry = TranscriptEvent.objects.get(run=run, kind="step.retrying").payload
    assert "denied for [REDACTED:email:2] with token [REDACTED:github_token:1]" in retry["error"]
    assert steps["d"].status == "succeeded"
    assert "to=[REDACTED:email:3] key=[REDACTED:anthropic_key:1]" in steps["d"].result["stdout"]
    sent = json.dumps([r.body for r in fake.requests])
    assert PLANNER_KEY in fake.requests[0].headers["authorization"]  # the key did its job
    assert EMAIL not in sent and OPENAI_KEY not in sent  # the model saw the redacted task

    hits = [(t, raw) for t, text in every_stored_text() for raw in RAW if raw in text]
    assert hits == []

    # Placeholders are stable: one address, one placeholder, in task, plan, params and result.
    run.refresh_from_db()
    task = run.task
    assert "[REDACTED:email:1]" in task.title
    assert "[REDACTED:phone:1]" in task.description
    assert steps["a"].params == {"to": "[REDACTED:email:1]", "key": "[REDACTED:openai_key:1]"}
    assert steps["b"].params["key"] == {"password": "[REDACTED:password:1]"}
    assert "to=[REDACTED:email:1] key=[REDACTED:openai_key:1]" in steps["a"].result["stdout"]
    assert f"password={'[REDACTED:password:1]'}" in steps["a"].result["stdout"]
    assert "[REDACTED:private_key:1]" in steps["a"].result["stdout"]
    assert "[REDACTED:email:1]" in Plan.objects.get(run=run, version=1).goal
    counts = Run.objects.get(pk=run.pk).redaction
    assert set(counts) == {"salt", "seen"}
    assert {k: len(v) for k, v in counts["seen"].items()} == {
        "anthropic_key": 1,
        "aws_key": 1,
        "email": 3,
        "github_token": 1,
        "openai_key": 1,
        "password": 1,
        "phone": 1,
        "private_key": 1,
        "secret": 2,
    }

    # What people and programs read shows none either, and the page says how much was redacted.
    client = Client()
    client.force_login(operator)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "3 email addresses" in page and "1 AWS access key," in page
    shown = [
        page,
        client.get(f"/runs/{run.pk}/transcript/").content.decode(),
        *(
            client.get(f"/api/runs/{run.pk}{tail}").content.decode()
            for tail in ("", "/plans", "/steps", "/events?limit=200")
        ),
    ]
    api_run = client.get(f"/api/runs/{run.pk}").json()
    assert api_run["redactions"]["email"] == 3 and api_run["redactions"]["secret"] == 2
    shown += [
        reviewer_client.get(f"/reviews/{item.pk}/").content.decode(),
        reviewer_client.get(f"/api/reviews/{item.pk}").content.decode(),
        reviewer_client.get(f"/api/audit?run={run.pk}").content.decode(),
    ]
    leaks = [(i, raw) for i, text in enumerate(shown) for raw in RAW if raw in text]
    assert leaks == []

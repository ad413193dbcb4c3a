"""A bounded schemathesis run over the whole OpenAPI schema: no 5xx, every response as documented.

Requests go through Django's real WSGI handler (auth, CSRF, middleware), with a
staff token so every operation, staff-only ones included, is reached.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import schemathesis
from django.conf import settings
from django.contrib.auth.models import User
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as REGISTRY
from schemathesis.checks import load_all_checks, not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from reviews.models import ApprovalPolicy, ReviewItem
from runs.lifecycle.submit import run_submit_plan
from runs.models import Tool
from runs.tokens import api_token_create
from runs.tools.yaml_io import tools_import
from tests.runs.api.conftest import VALID_PLAN

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class Seeded:
    token: str
    run_id: int
    session: dict[str, str]
    item_id: int


@pytest.fixture
def seeded(admin_user: User, noop_tool: Tool) -> Seeded:
    """The demo tools, a run with steps and events to read, and a staff token."""
    tools_import(text=(settings.BASE_DIR / "runs/demo/tools.yaml").read_text())
    run = run_submit_plan(title="Fuzzed", document=VALID_PLAN, submitted_by=admin_user)
    browser = Client()
    browser.force_login(admin_user)
    browser.get("/")  # sets the csrftoken cookie
    session = {name: morsel.value for name, morsel in browser.cookies.items()}
    # A run held for plan approval gives the reviews endpoints an open item.
    ApprovalPolicy.objects.create(mode="always")
    held = run_submit_plan(title="Held", document=VALID_PLAN, submitted_by=admin_user)
    item = ReviewItem.objects.get(run=held)
    token = api_token_create(user=admin_user, name="schemathesis").plaintext
    return Seeded(token, run.pk, session, item.pk)


@pytest.fixture
def wsgi_app(seeded: Seeded) -> Iterator[WSGIHandler]:
    """Django's WSGI app inside the test's transaction (as the test client runs it).

    Set up after ``seeded``: the test client reconnects the signal below when it is done.
    """
    # A real handler closes the connection around each request, which would end the
    # test's transaction; Django's own test client disconnects this signal too.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


# A whole tool (PUT) needs a config its kind accepts, and a task a plan whose steps name real
# tools with valid parameters, which random data practically never is (test_runs covers both);
# creating a token with a token is refused by design (403), whatever the body. A decision needs
# every checklist index ticked (or a non-blank reason to reject), and the seeded plan's
# submitter may not approve it (four eyes): tests/reviews/test_api.py covers decisions. A retry
# needs a failed run and its failed step's id; the seeded run has not failed
# (tests/runs/lifecycle/test_retries.py covers retries). An answer needs a run waiting on a
# question (tests/runs/lifecycle/test_questions.py covers answers).
MAY_NOT_SUCCEED_AT_RANDOM = {
    "PUT /api/tools/{name}",
    "POST /api/tasks",
    "POST /api/reviews/{item_id}/decide",
    "POST /api/runs/{run_id}/retry",
    "POST /api/runs/{run_id}/resume",  # the seeded run is not escalated: 409 by design
    "POST /api/playbooks",  # needs a succeeded run's id in its body (test_playbook_saving.py)
    "POST /api/runs/{run_id}/answer",  # the seeded run asks nothing: 409 by design
    "POST /api/runs/{run_id}/confirm",  # the seeded run waits for no confirmation: 409
    "POST /api/runs/{run_id}/discard",
    # The seeded item is no tool question (404), and random content rarely fits a form.
    "POST /api/runs/{run_id}/elicitations/{item_id}",
}
NEVER_SUCCEEDS_WITH_A_TOKEN = {"POST /api/tokens"}
RENAME_OR_REMOVE = {"PUT /api/tools/{name}", "DELETE /api/tools/{name}"}


@pytest.mark.parametrize(
    ("mode", "known_ids", "by_session"),
    [
        (GenerationMode.POSITIVE, False, False),
        (GenerationMode.NEGATIVE, False, False),
        # Random ids and names rarely exist: these rounds point paths at the seeded run and tool.
        (GenerationMode.POSITIVE, True, False),
        # A browser session with its CSRF token reaches what a token may not (minting tokens).
        (GenerationMode.POSITIVE, True, True),
    ],
    ids=["positive", "negative", "positive-known-ids", "session-known-ids"],
)
def test_every_operation_answers_as_documented_and_never_with_a_5xx(
    mode: GenerationMode,
    known_ids: bool,
    by_session: bool,
    wsgi_app: WSGIHandler,
    seeded: Seeded,
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", wsgi_app)
    # Revoking would end this test's own token; revocation has its own tests.
    schema = schema.exclude(path="/api/tokens/{token_id}", method="DELETE")
    if by_session:
        headers = {"X-CSRFToken": seeded.session["csrftoken"]}
        cookies = seeded.session
    else:
        headers, cookies = {"Authorization": f"Bearer {seeded.token}"}, {}
    known = {"run_id": seeded.run_id, "name": "read_schema", "item_id": seeded.item_id}
    checks = [*CHECKS, negative_data_rejection] if mode == GenerationMode.NEGATIVE else CHECKS
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 14
    seen: dict[str, set[int]] = {}

    for operation in operations:
        path_parameters = (
            {k: v for k, v in known.items() if "{" + k + "}" in operation.path}
            if known_ids
            else None
        )

        @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call_and_validate(headers=headers, checks=checks, cookies=cookies)
            seen.setdefault(case.operation.label, set()).add(response.status_code)
            if case.operation.label in RENAME_OR_REMOVE and response.status_code < 300:
                # A whole tool that happens to be valid renames the known one: bring it back,
                # so the operations after this one still find it.
                tools_import(text=(settings.BASE_DIR / "runs/demo/tools.yaml").read_text())

        check()

    # The run really exercised the API: the token was accepted everywhere, and with
    # known ids every operation (but one refused by design) succeeded at least once.
    assert len(seen) == len(operations)
    assert all(401 not in statuses for statuses in seen.values()), seen
    if known_ids:
        never = {op for op, st in seen.items() if not any(s < 300 for s in st)}
        refused = set() if by_session else NEVER_SUCCEEDS_WITH_A_TOKEN
        assert refused <= never <= MAY_NOT_SUCCEED_AT_RANDOM | refused, {
            op: seen[op] for op in never
        }


# -- every check, as an operator and as a reviewer ------------------------------------------
ROLE_EXAMPLES = 8


@pytest.mark.parametrize("role", ["operator", "reviewer"])
def test_every_check_passes_for_each_role(
    role: str, request: pytest.FixtureRequest, wsgi_app: WSGIHandler, seeded: Seeded
) -> None:
    user: User = request.getfixturevalue(role)
    token = api_token_create(user=user, name="schemathesis").plaintext
    # The token as configured auth, not a header replacing the generated one: a negative
    # case must not count an Authorization header it did not send.
    config = tomllib.loads((settings.BASE_DIR / "schemathesis.toml").read_text())
    config["auth"] = {"openapi": {"BearerTokenAuth": {"bearer": token}}}
    schema = schemathesis.openapi.from_wsgi(
        "/api/openapi.json", wsgi_app, config=SchemathesisConfig.from_dict(config)
    )
    schema = schema.exclude(path="/api/tokens/{token_id}", method="DELETE")
    load_all_checks()
    checks = REGISTRY.get_all()
    known = {"run_id": seeded.run_id, "name": "read_schema", "item_id": seeded.item_id}
    failures: list[str] = []
    cases = 0
    for operation in [result.ok() for result in schema.get_all_operations()]:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            path_parameters = {k: v for k, v in known.items() if "{" + k + "}" in operation.path}

            @given(
                case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
            )
            @hypothesis_settings(
                max_examples=ROLE_EXAMPLES,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case) -> None:
                nonlocal cases
                cases += 1
                try:
                    case.call_and_validate(checks=checks)
                except (AssertionError, FailureGroup) as exc:  # schemathesis' failure report
                    failures.append(f"{case.operation.label}: {exc}"[:3000])

            check()
    print(f"{role}: {cases} cases, {len(failures)} failures")
    assert not failures, "\n\n".join(failures[:10])

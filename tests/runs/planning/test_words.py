"""Steps written in words: mapped to tools offline, shown for confirmation, failures named."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from runs.models import Run
from runs.planning.words import map_steps, steps_in_words
from tests.runs.api.conftest import api_as
from tests.runs.planning.matching_set import demo_tools

SEED_PLAN = """1. Analyze current schema
2. Create backup
3. Write migration script
4. Test migration on copy
5. If tests pass, run on production
6. Verify data integrity
7. Update application config"""

RELEASE = """- Back up prod.db
- Run the smoke tests
- Deploy 2.5.0 to staging
- Tell the team "2.5.0 is on staging"
"""


def test_numbered_and_bulleted_lists_are_steps_in_words_and_plans_are_not() -> None:
    assert steps_in_words("1. Back up\n2) Verify\n   it twice\nStep 3: notify") == [
        "Back up",
        "Verify it twice",
        "notify",
    ]
    assert steps_in_words("- id: backup\n  action: backup_database") is None
    assert steps_in_words("steps:\n  - id: a\n    action: noop") is None
    assert steps_in_words("Back up the database") is None
    assert steps_in_words("") is None


def test_each_step_maps_to_its_tool_with_the_values_it_states() -> None:
    mapping = map_steps(steps_in_words(RELEASE) or [], demo_tools(), threshold=0.5)
    assert mapping.ok
    assert [(s["action"], s["params"]) for s in mapping.document["steps"]] == [
        ("backup_database", {"db": "prod.db"}),
        ("run_tests", {"suite": "smoke"}),
        ("deploy", {"version": "2.5.0", "environment": "staging"}),
        ("notify_team", {"message": "2.5.0 is on staging"}),
    ]
    assert mapping.document["steps"][3]["depends_on"] == ["step_3"]  # in the order written


def test_the_seeds_list_says_which_steps_map_to_no_tool_and_why() -> None:
    mapping = map_steps(steps_in_words(SEED_PLAN) or [], demo_tools(), threshold=0.5)
    assert not mapping.ok and mapping.document is None
    tools = {s.number: s.tool for s in mapping.steps}
    assert tools[1] == "read_schema"
    assert tools[2] == "backup_database"
    assert tools[6] == "verify_integrity"
    why = {s.number: s.why for s in mapping.unmapped}
    assert why[4] == "restore_database fits, but the line does not say its backup"
    assert why[7] == "no tool's description shares a word with it"
    assert set(why) == {3, 4, 7}


@pytest.fixture
def demo(db: None) -> None:
    call_command("seed_demo", stdout=StringIO())


def test_the_api_maps_steps_and_stores_nothing(demo: None, operator: Any) -> None:
    response = api_as(operator).post("/plans/from-words", {"steps": RELEASE, "goal": "Release"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True
    assert body["plan"]["goal"] == "Release"
    assert [s["tool"] for s in body["steps"]] == [
        "backup_database",
        "run_tests",
        "deploy",
        "notify_team",
    ]
    failed = api_as(operator).post("/plans/from-words", {"steps": ["Feed the cat"]}).json()
    assert failed["ok"] is False and failed["plan"] is None
    assert failed["steps"][0]["why"] == "no tool's description shares a word with it"
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{"steps": "Just one sentence"}, {"steps": []}, {"steps": ["  "]}, {"steps": 3}, {}],
)
def test_the_api_refuses_what_is_not_a_list_of_steps(
    demo: None, operator: Any, body: dict[str, Any]
) -> None:
    response = api_as(operator).post("/plans/from-words", body)
    assert response.status_code == 422, response.content


def test_only_operators_map_steps(demo: None, reviewer: Any, outsider: Any) -> None:
    assert api_as(reviewer).post("/plans/from-words", {"steps": RELEASE}).status_code == 403
    assert api_as(outsider).post("/plans/from-words", {"steps": RELEASE}).status_code == 403
    assert api_as(None).post("/plans/from-words", {"steps": RELEASE}).status_code == 401


def test_the_new_run_page_proposes_the_plan_and_names_the_steps_that_fail(
    demo: None, operator: Any
) -> None:
    client = Client()
    client.force_login(operator)
    check = reverse("runs:check")
    page = client.post(check, {"plan": RELEASE}).content.decode()
    assert 'data-plan-check="words"' in page
    assert "<pre data-words-plan>goal: Back up prod.db" in page
    failing = client.post(check, {"plan": SEED_PLAN}).content.decode()
    assert "3 of 7 map to no tool" in failing
    assert "restore_database fits, but the line does not say its backup" in failing
    assert "data-words-plan" not in failing
    submitted = client.post(reverse("runs:new"), {"plan": RELEASE, "title": "Release"})
    assert "These are steps in words, not a plan" in submitted.content.decode()
    assert not Run.objects.exists()

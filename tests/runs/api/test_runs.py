"""Task and run endpoints: submit a plan, list with filters and pages, detail, plans, steps, events, cancel."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.lifecycle.claim import run_execute
from runs.lifecycle.submit import run_submit_plan
from runs.models import Plan, Run, RunStatus, Step, Task, Tool, TranscriptEvent
from tests.runs.api.conftest import VALID_PLAN, api_as

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------- create
@pytest.mark.parametrize(
    "plan",
    [
        VALID_PLAN,
        json.dumps(VALID_PLAN),
        "goal: Say hello twice\nsteps:\n  - {id: a, action: noop}\n",
    ],
    ids=["object", "json-text", "yaml-text"],
)
def test_an_operator_submits_a_plan_and_gets_a_queued_run(
    plan: object, noop_tool: Tool, operator: User
) -> None:
    response = api_as(operator).post("/tasks", {"plan": plan, "max_parallel": 3})
    assert response.status_code == 201, response.json()
    body = response.json()
    run = Run.objects.select_related("task").get(pk=body["id"])
    assert body["status"] == run.status == RunStatus.QUEUED
    assert body["title"] == run.task.title == "Say hello twice"  # the goal, no title given
    assert body["submitted_by"] == "olivia" and body["max_parallel"] == 3
    assert (
        body["plan_version"] == 1 and body["steps_total"] == run.steps.filter(phase="main").count()
    )


def test_an_invalid_plan_is_422_with_every_problem_and_its_path_and_creates_nothing(
    noop_tool: Tool, operator: User
) -> None:
    plan = {
        "steps": [
            {"id": "a", "action": "launch_rockets"},
            {"id": "a", "action": "noop"},
            {"id": "b", "action": "noop", "depends_on": ["ghost"]},
        ]
    }
    response = api_as(operator).post("/tasks", {"title": "Bad", "plan": plan})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "invalid_plan"
    fields = {f["field"] for f in body["fields"]}
    codes = {f["code"] for f in body["fields"]}
    assert len(body["fields"]) >= 3 and "duplicate_id" in codes
    assert "plan.steps[0].action" in fields
    assert all(f["field"].startswith("plan") and f["message"] for f in body["fields"])
    assert (Task.objects.count(), Run.objects.count(), Plan.objects.count()) == (0, 0, 0)


def test_an_invalid_plan_writes_no_task_run_plan_or_transcript_event(
    noop_tool: Tool, operator: User
) -> None:
    plan = {"steps": [{"id": "a", "action": "launch_rockets"}]}
    response = api_as(operator).post("/tasks", {"title": "Bad", "plan": plan})
    assert response.status_code == 422
    assert "nothing was created" in response.json()["detail"]
    for model in (Task, Run, Plan, TranscriptEvent):
        assert not model.objects.exists(), model.__name__


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        ({"plan": "steps:\n  - id: a\n    action: [unclosed\n"}, "plan_syntax", "plan"),
        ({"plan": ""}, "plan_syntax", "plan"),
        ({"plan": {"steps": [{"id": "a", "action": "noop"}]}}, "invalid_plan", "title"),
        ({"title": "t"}, "invalid_input", "plan"),
        ({"title": "t", "plan": VALID_PLAN, "max_parallel": 0}, "invalid_input", "max_parallel"),
        ({"title": "x" * 201, "plan": VALID_PLAN}, "invalid_input", "title"),
        ({"title": "t", "plan": VALID_PLAN, "surprise": 1}, "invalid_input", "surprise"),
        ({"title": "a\x00b", "plan": VALID_PLAN}, "invalid_input", "title"),
        ({"title": "t", "plan": {"goal": "x\x00", "steps": []}}, "invalid_input", "plan.goal"),
        (
            {"title": "t", "plan": 'steps: [{id: a, action: noop, params: {x: "\\0"}}]'},
            "plan_syntax",
            "plan",
        ),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_creates_nothing(
    payload: dict, code: str, field: str, noop_tool: Tool, operator: User
) -> None:
    response = api_as(operator).post("/tasks", payload)
    assert response.status_code == 422, response.content
    body = response.json()
    assert body["code"] == code
    assert field in {f["field"] for f in body["fields"]}
    assert Run.objects.count() == 0


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", "null", '"text"'])
def test_a_body_that_is_not_a_task_object_is_a_4xx(body: str, operator: User) -> None:
    response = api_as(operator).post("/tasks", body)
    assert response.status_code in (400, 422)
    assert set(response.json()) == {"detail", "code", "fields"}


# --------------------------------------------------------------------------- list
def _runs(operator: User, reviewer: User) -> dict[str, Run]:
    return {
        "deploy": run_submit_plan(
            title="Deploy the app", document=VALID_PLAN, submitted_by=operator
        ),
        "broken": run_submit_plan(
            title="Broken plan",
            document={"steps": [{"id": "x", "action": "nope"}]},
            submitted_by=reviewer,
        ),
        "migrate": run_submit_plan(
            title="Migrate the DB", document=VALID_PLAN, submitted_by=operator
        ),
    }


def titles(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return [r["title"] for r in response.json()["items"]]


def test_the_run_list_is_newest_first_and_filters_by_status_submitter_text_and_date(
    noop_tool: Tool, operator: User, reviewer: User
) -> None:
    runs = _runs(operator, reviewer)
    client = api_as(reviewer)
    assert titles(client.get("/runs")) == ["Migrate the DB", "Broken plan", "Deploy the app"]
    assert titles(client.get("/runs", {"status": "failed"})) == ["Broken plan"]
    assert titles(client.get("/runs", {"status": ["failed", "queued"]})) == [
        "Migrate the DB",
        "Broken plan",
        "Deploy the app",
    ]
    assert titles(client.get("/runs", {"submitter": "olivia"})) == [
        "Migrate the DB",
        "Deploy the app",
    ]
    assert titles(client.get("/runs", {"q": "DEPLOY"})) == ["Deploy the app"]
    Run.objects.filter(pk=runs["deploy"].pk).update(created_at=timezone.now() - timedelta(days=3))
    since = (timezone.now() - timedelta(days=1)).isoformat()
    assert titles(client.get("/runs", {"created_after": since})) == [
        "Migrate the DB",
        "Broken plan",
    ]
    assert titles(client.get("/runs", {"created_before": since})) == ["Deploy the app"]


def test_the_run_list_pages_with_limit_offset_and_a_total(noop_tool: Tool, operator: User) -> None:
    for i in range(7):
        run_submit_plan(title=f"Task {i}", document=VALID_PLAN, submitted_by=operator)
    client = api_as(operator)
    first = client.get("/runs", {"limit": 3}).json()
    third = client.get("/runs", {"limit": 3, "offset": 6}).json()
    assert [r["title"] for r in first["items"]] == ["Task 6", "Task 5", "Task 4"]
    assert [r["title"] for r in third["items"]] == ["Task 0"]
    assert first["total"] == third["total"] == 7
    assert (third["limit"], third["offset"]) == (3, 6)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 100000},
        {"offset": -1},
        {"status": "exploded"},
        {"created_after": "soon"},
    ],
)
def test_bad_list_parameters_are_422(params: dict, operator: User) -> None:
    response = api_as(operator).get("/runs", params)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"].startswith(next(iter(params)))


def test_the_run_list_takes_the_same_number_of_queries_for_one_run_or_many(
    noop_tool: Tool, operator: User, reviewer: User
) -> None:
    client = api_as(operator)
    run_submit_plan(title="one", document=VALID_PLAN, submitted_by=operator)
    client.get("/runs")  # token last-used write happens once a minute at most
    with CaptureQueriesContext(connection) as one:
        assert len(client.get("/runs").json()["items"]) == 1
    for i in range(15):
        run_submit_plan(
            title=f"more {i}", document=VALID_PLAN, submitted_by=reviewer if i % 2 else operator
        )
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/runs").json()["items"]) == 16
    assert len(many) == len(one)


# --------------------------------------------------------------------------- detail, plans, steps
def test_run_detail_plans_and_steps_describe_the_run(noop_tool: Tool, operator: User) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    client = api_as(operator)
    detail = client.get(f"/runs/{run.pk}").json()
    assert (detail["id"], detail["status"], detail["steps_total"]) == (run.pk, "queued", 2)
    plans = client.get(f"/runs/{run.pk}/plans").json()
    assert [(p["version"], p["source"], p["is_valid"], p["created_by"]) for p in plans] == [
        (1, "operator", True, "olivia")
    ]
    assert plans[0]["document"] == VALID_PLAN
    steps = client.get(f"/runs/{run.pk}/steps").json()
    assert [(s["key"], s["phase"], s["depends_on"]) for s in steps] == [
        ("first", "main", []),
        ("second", "main", ["first"]),
        ("rollback-1", "rollback", []),
    ]
    same = client.get(f"/runs/{run.pk}/steps", {"version": 1}).json()
    assert same == steps
    assert client.get(f"/runs/{run.pk}/steps", {"version": 2}).status_code == 404


def test_a_submitted_plan_is_stored_with_its_tools_parameter_defaults_filled_in(
    operator: User,
) -> None:
    Tool.objects.create(
        name="run_tests",
        kind="python",
        config={"callable": "runs.tools.builtin.echo"},
        parameters_schema={
            "type": "object",
            "properties": {
                "suite": {"type": "string", "default": "unit"},
                "fail": {"type": "boolean", "default": False},
            },
            "required": ["suite"],
        },
    )
    plan = {"steps": [{"id": "1", "action": "run_tests", "params": {}}]}
    response = api_as(operator).post("/tasks", {"title": "Tests", "plan": plan})
    assert response.status_code == 201, response.json()
    run_id = response.json()["id"]
    stored = api_as(operator).get(f"/runs/{run_id}/plans").json()[0]["document"]
    effective = {"suite": "unit", "fail": False}
    assert stored == {"steps": [{"id": "1", "action": "run_tests", "params": effective}]}
    (step,) = api_as(operator).get(f"/runs/{run_id}/steps").json()
    assert step["params"] == effective


def test_each_step_shows_its_own_idempotency_key(noop_tool: Tool, operator: User) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    steps = api_as(operator).get(f"/runs/{run.pk}/steps").json()
    keys = [s["idempotency_key"] for s in steps]
    stored = [
        str(k) for k in Step.objects.filter(run=run).values_list("idempotency_key", flat=True)
    ]
    assert sorted(keys) == sorted(stored) and len(set(keys)) == 3


@pytest.mark.django_db(transaction=True)
def test_steps_show_results_once_the_run_executed(noop_tool: Tool, operator: User) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    assert run_execute(run_id=run.pk) == RunStatus.SUCCEEDED
    client = api_as(operator)
    detail = client.get(f"/runs/{run.pk}").json()
    assert detail["status"] == "succeeded" and detail["steps_succeeded"] == 2
    steps = client.get(f"/runs/{run.pk}/steps").json()
    assert [s["status"] for s in steps if s["phase"] == "main"] == ["succeeded", "succeeded"]
    assert steps[0]["result"] == {"ok": True} and steps[0]["attempts"] == 1


@pytest.mark.parametrize("path", ["", "/plans", "/steps", "/events", "/cancel"])
def test_an_unknown_run_is_a_json_404(path: str, operator: User) -> None:
    client = api_as(operator)
    response = (
        client.post(f"/runs/999999{path}")
        if path == "/cancel"
        else client.get(f"/runs/999999{path}")
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("run_id", ["0", "-4", "abc", str(2**64)])
def test_an_impossible_run_id_is_422_not_a_crash(run_id: str, operator: User) -> None:
    response = api_as(operator).get(f"/runs/{run_id}")
    assert response.status_code in (404, 422)
    assert response["Content-Type"].startswith("application/json")


# --------------------------------------------------------------------------- events
@pytest.mark.django_db(transaction=True)
def test_events_follow_from_a_seq_in_order_a_page_at_a_time(
    noop_tool: Tool, operator: User
) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    run_execute(run_id=run.pk)
    total = TranscriptEvent.objects.filter(run=run).count()
    assert total > 4
    client = api_as(operator)
    seen: list[int] = []
    after, pages = 0, 0
    while True:
        page = client.get(f"/runs/{run.pk}/events", {"after": after, "limit": 3}).json()
        pages += 1
        seen += [e["seq"] for e in page["items"]]
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == list(range(1, total + 1))
    assert pages == -(-total // 3)
    assert page["run_status"] == "succeeded"
    tail = client.get(f"/runs/{run.pk}/events", {"after": total}).json()
    assert tail == {"run_status": "succeeded", "items": [], "next_after": total, "has_more": False}
    first = client.get(f"/runs/{run.pk}/events", {"limit": 1}).json()["items"][0]
    assert (first["seq"], first["kind"], first["payload"]["task"]) == (
        1,
        "run.created",
        "Two hellos",
    )
    assert first["summary"] == f"task 'Two hellos' submitted by {operator.username}"


# --------------------------------------------------------------------------- cancel
def test_an_operator_cancels_a_queued_run_and_a_second_cancel_is_409(
    noop_tool: Tool, operator: User
) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    client = api_as(operator)
    response = client.post(f"/runs/{run.pk}/cancel")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "cancelled" and body["cancel_requested_by"] == "olivia"
    assert set(Step.objects.filter(run=run).values_list("status", flat=True)) == {"cancelled"}
    again = client.post(f"/runs/{run.pk}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "run_finished"


@pytest.mark.django_db(transaction=True)
def test_cancel_and_roll_back_of_a_parked_run_goes_to_a_worker_with_who_and_why(
    noop_tool: Tool, operator: User
) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    Step.objects.filter(run=run, key="first").update(status="succeeded")
    Run.objects.filter(pk=run.pk).update(status=RunStatus.AWAITING_APPROVAL)
    client = api_as(operator)
    response = client.post(f"/runs/{run.pk}/cancel", {"rollback": True, "reason": "bad idea"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["cancel_rollback"], body["cancel_reason"]) == (
        "rolling_back",
        True,
        "bad idea",
    )
    assert run_execute(run_id=run.pk) == RunStatus.ROLLED_BACK
    steps = {s["key"]: s for s in client.get(f"/runs/{run.pk}/steps").json()}
    assert steps["first"]["status"] == "rolled_back"
    assert steps["first"]["undone_by"] == ["rollback-1"]
    assert steps["second"]["status"] == "cancelled"
    detail = client.get(f"/runs/{run.pk}").json()
    assert detail["stop_reason"].startswith("cancelled by olivia: bad idea; rolled back")


def test_cancel_and_roll_back_with_nothing_done_cancels(noop_tool: Tool, operator: User) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    response = api_as(operator).post(f"/runs/{run.pk}/cancel", {"rollback": True})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["stop_reason"] == "cancelled by olivia; nothing to roll back"


@pytest.mark.parametrize("body", [{"rollback": "maybe"}, {"rolback": True}, "[1]"])
def test_a_bad_cancel_body_is_a_422_and_cancels_nothing(
    noop_tool: Tool, operator: User, body: Any
) -> None:
    run = run_submit_plan(title="Two hellos", document=VALID_PLAN, submitted_by=operator)
    response = api_as(operator).post(f"/runs/{run.pk}/cancel", body)
    assert response.status_code == 422, response.content
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("1758-05-16T12:48:54-21:42", 200),  # PostgreSQL refuses such offsets unless converted
        ("2020-01-01T00:00:00", 200),  # naive: taken as UTC
        ("0001-01-01T00:00:00+05:00", 422),  # before the year 1 in UTC
    ],
)
def test_odd_dates_in_filters_are_converted_or_refused_never_a_crash(
    value: str, status: int, operator: User
) -> None:
    response = api_as(operator).get("/runs", {"created_after": value})
    assert response.status_code == status


@pytest.mark.parametrize("value", ["1020790", "-5", "1.5e3x", "1700000000.5"])
def test_a_number_is_not_a_date_in_run_filters(value: str, operator: User) -> None:
    response = api_as(operator).get("/runs", {"created_after": value})
    assert response.status_code == 422, response.content
    assert response.json()["fields"][0]["field"] == "created_after"

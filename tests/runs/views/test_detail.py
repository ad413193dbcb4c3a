"""The server-rendered pages: who may see what, the new-run form, cancel, detail, tools, login."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.messages import get_messages
from django.test import Client, RequestFactory
from django.urls import reverse

from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step, Tool
from runs.views import LoginView, event_summary

pytestmark = pytest.mark.django_db

VALID_PLAN = {
    "goal": "Say hello twice",
    "steps": [
        {"id": "first", "action": "noop", "description": "the first hello"},
        {"id": "second", "action": "noop", "depends_on": ["first"]},
    ],
    "rollback": [{"action": "noop", "description": "undo"}],
}


@pytest.fixture
def noop_tool(db: None) -> Tool:
    return Tool.objects.create(
        name="noop",
        kind="python",
        config={"callable": "runs.tools.builtin.noop"},
        parameters_schema={"type": "object"},
        description="Return at once.",
    )


@pytest.fixture
def queued_run(noop_tool: Tool, operator: User) -> Run:
    run = run_submit_plan(
        title="Two hellos", document=VALID_PLAN, submitted_by=operator, max_parallel=2
    )
    assert run.status == RunStatus.QUEUED
    return run


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --------------------------------------------------------------------------- permissions
PAGES = ["runs:list", "runs:new", "runs:detail", "runs:transcript", "runs:tools"]


def url_of(name: str, run: Run) -> str:
    with_run = ("runs:detail", "runs:transcript", "runs:cancel")
    return reverse(name, args=[run.pk]) if name in with_run else reverse(name)


@pytest.mark.parametrize("name", [*PAGES, "runs:cancel"])
def test_anonymous_visitors_are_sent_to_the_login_page(name: str, queued_run: Run) -> None:
    url = url_of(name, queued_run)
    method = Client().post if name == "runs:cancel" else Client().get
    response = method(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("name", [*PAGES, "runs:cancel"])
def test_a_user_without_a_role_gets_403_everywhere(
    name: str, queued_run: Run, outsider: User
) -> None:
    client = client_for(outsider)
    url = url_of(name, queued_run)
    response = client.post(url) if name == "runs:cancel" else client.get(url)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("reviewer", {**{name: 200 for name in PAGES}, "runs:new": 403}),
        ("operator", {name: 200 for name in PAGES}),
        ("admin_user", {name: 200 for name in PAGES}),
    ],
)
def test_each_role_sees_the_pages_its_role_allows(
    who: str, expected: dict[str, int], queued_run: Run, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(who))
    seen = {name: client.get(url_of(name, queued_run)).status_code for name in PAGES}
    assert seen == expected


def test_a_reviewer_can_neither_submit_a_run_nor_cancel_one(
    queued_run: Run, reviewer: User
) -> None:
    client = client_for(reviewer)
    submitted = client.post(reverse("runs:new"), {"title": "x", "plan": json.dumps(VALID_PLAN)})
    cancelled = client.post(reverse("runs:cancel", args=[queued_run.pk]))
    assert (submitted.status_code, cancelled.status_code) == (403, 403)
    assert Run.objects.count() == 1
    queued_run.refresh_from_db()
    assert queued_run.status == RunStatus.QUEUED


def test_the_nav_offers_new_run_to_operators_and_admin_to_staff_only(
    operator: User, reviewer: User, admin_user: User
) -> None:
    new_run, admin = reverse("runs:new"), reverse("admin:index")
    as_operator = client_for(operator).get(reverse("runs:list")).content.decode()
    as_reviewer = client_for(reviewer).get(reverse("runs:list")).content.decode()
    as_admin = client_for(admin_user).get(reverse("runs:list")).content.decode()
    assert new_run in as_operator and admin not in as_operator
    assert new_run not in as_reviewer and admin not in as_reviewer
    assert new_run in as_admin and admin in as_admin
    assert 'action="/accounts/logout/"' in as_reviewer


@pytest.mark.parametrize(
    ("method", "name"),
    [("get", "runs:cancel"), ("post", "runs:list"), ("post", "runs:detail"), ("put", "runs:new")],
)
def test_wrong_methods_get_405(method: str, name: str, queued_run: Run, operator: User) -> None:
    response = getattr(client_for(operator), method)(url_of(name, queued_run))
    assert response.status_code == 405


def test_an_unknown_run_is_404_on_the_detail_page_and_for_cancel(operator: User) -> None:
    client = client_for(operator)
    assert client.get(reverse("runs:detail", args=[999_999])).status_code == 404
    assert client.post(reverse("runs:cancel", args=[999_999])).status_code == 404


# --------------------------------------------------------------------------- run list
def test_the_run_list_shows_runs_newest_first_with_status_submitter_and_steps(
    noop_tool: Tool, operator: User, reviewer: User
) -> None:
    older = run_submit_plan(title="Older task", document=VALID_PLAN, submitted_by=operator)
    newer = run_submit_plan(
        title="Newer task", document={"steps": [{"id": "x", "action": "nope"}]}, submitted_by=None
    )
    page = client_for(reviewer).get(reverse("runs:list")).content.decode()
    assert page.index("Newer task") < page.index("Older task")
    assert "status-failed" in page and "status-queued" in page
    assert "olivia" in page
    assert "0/2" in page  # the older run: nothing succeeded yet, two main steps
    assert newer.stop_reason.startswith("plan v1 is invalid (1 problem)")
    assert "plan v1 is invalid (1 problem)" in page
    assert reverse("runs:detail", args=[older.pk]) in page


def test_the_run_list_filters_by_status(noop_tool: Tool, operator: User) -> None:
    run_submit_plan(title="Queued one", document=VALID_PLAN, submitted_by=operator)
    run_submit_plan(
        title="Failed one", document={"steps": [{"id": "x", "action": "nope"}]}, submitted_by=None
    )
    page = client_for(operator).get(reverse("runs:list"), {"status": "failed"}).content.decode()
    assert "Failed one" in page and "Queued one" not in page


def test_bad_list_parameters_show_every_run_instead_of_an_error(
    queued_run: Run, operator: User
) -> None:
    client = client_for(operator)
    response = client.get(reverse("runs:list"), {"status": "exploded", "page": "-3"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "Two hellos" in page
    assert "Status: Select a valid choice. exploded is not one of the available choices." in page
    assert "(ignored)" in page
    assert client.get(reverse("runs:list"), {"page": "lots"}).status_code == 200
    assert client.get(reverse("runs:list"), {"page": "99999"}).status_code == 200


def test_the_run_list_pages_by_fifty(noop_tool: Tool, operator: User) -> None:
    for i in range(51):
        run_submit_plan(title=f"Task {i:02d}", document=VALID_PLAN, submitted_by=operator)
    client = client_for(operator)
    first = client.get(reverse("runs:list")).content.decode()
    second = client.get(reverse("runs:list"), {"page": 2}).content.decode()
    assert "Task 50" in first and "Task 00" not in first
    assert "Task 00" in second and "page 2 of 2" in second


# --------------------------------------------------------------------------- new run
def test_the_new_run_form_shows_every_validation_problem_inline_and_creates_no_run(
    noop_tool: Tool, operator: User
) -> None:
    plan = {
        "steps": [
            {"id": "a", "action": "launch_rockets"},
            {"id": "a", "action": "noop"},
            {"id": "b", "action": "noop", "depends_on": ["ghost"]},
        ]
    }
    response = client_for(operator).post(
        reverse("runs:new"), {"title": "Bad plan", "plan": json.dumps(plan)}
    )
    assert response.status_code == 200
    problems = response.context["form"].plan_problems
    codes = {p["code"] for p in problems}
    assert len(problems) >= 3
    assert {"duplicate_id"} <= codes
    page = response.content.decode()
    for problem in problems:
        assert problem["path"] in page
    assert "launch_rockets" in page and "ghost" in page
    assert f"The plan has {len(problems)} problems" in page
    assert Run.objects.count() == 0


def test_a_syntax_error_is_shown_with_the_text_kept(operator: User) -> None:
    text = "steps:\n  - id: a\n    action: [unclosed\n"
    response = client_for(operator).post(reverse("runs:new"), {"title": "t", "plan": text})
    assert response.status_code == 200
    assert "invalid YAML" in response.content.decode()
    assert response.context["form"]["plan"].value() == text
    assert Run.objects.count() == 0


@pytest.mark.parametrize("value", ["0", "-1", "many", "100000"])
def test_a_bad_max_parallel_is_a_form_error(value: str, noop_tool: Tool, operator: User) -> None:
    response = client_for(operator).post(
        reverse("runs:new"), {"title": "t", "plan": json.dumps(VALID_PLAN), "max_parallel": value}
    )
    assert response.status_code == 200
    assert response.context["form"].errors["max_parallel"]
    assert Run.objects.count() == 0


def test_a_valid_plan_creates_a_queued_run_and_redirects_to_it(
    noop_tool: Tool, operator: User
) -> None:
    response = client_for(operator).post(
        reverse("runs:new"),
        {"title": "Say hello", "plan": json.dumps(VALID_PLAN), "max_parallel": "3"},
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("runs:detail", args=[run.pk])
    assert (run.task.title, run.status, run.max_parallel) == ("Say hello", "queued", 3)
    assert run.task.submitted_by == operator
    assert list(run.steps.filter(phase="main").values_list("key", flat=True)) == [
        "first",
        "second",
    ]


def test_an_empty_title_takes_the_plans_goal(noop_tool: Tool, operator: User) -> None:
    yaml_plan = "goal: Say hello twice\nsteps:\n  - {id: a, action: noop}\n"
    client_for(operator).post(reverse("runs:new"), {"title": "", "plan": yaml_plan})
    assert Run.objects.get().task.title == "Say hello twice"


def test_an_empty_title_without_a_goal_is_a_form_error(noop_tool: Tool, operator: User) -> None:
    response = client_for(operator).post(
        reverse("runs:new"), {"title": "", "plan": "- {action: noop}\n"}
    )
    assert response.context["form"].errors["title"]
    assert Run.objects.count() == 0


def test_the_new_run_page_offers_each_demo_plan_and_prefills_the_one_chosen(
    operator: User,
) -> None:
    client = client_for(operator)
    page = client.get(reverse("runs:new")).content.decode()
    for name in ("migration", "migration-broken", "deploy", "deploy-broken"):
        assert f"?demo={name}" in page
    chosen = client.get(reverse("runs:new"), {"demo": "deploy-broken"})
    form = chosen.context["form"]
    assert "fail: true" in form["plan"].value()
    assert form["title"].value().startswith("Release 2.5.0-rc1")
    unknown = client.get(reverse("runs:new"), {"demo": "../../etc/passwd"})
    assert unknown.status_code == 200
    assert any("no demo plan" in m for m in messages_of(unknown))


# --------------------------------------------------------------------------- cancel
def test_cancelling_a_queued_run_cancels_it_and_a_second_cancel_shows_a_message(
    queued_run: Run, operator: User
) -> None:
    client = client_for(operator)
    url = reverse("runs:cancel", args=[queued_run.pk])
    first = client.post(url)
    assert first.status_code == 302
    assert first["Location"] == reverse("runs:detail", args=[queued_run.pk])
    queued_run.refresh_from_db()
    assert queued_run.status == RunStatus.CANCELLED
    assert set(queued_run.steps.values_list("status", flat=True)) == {"cancelled"}

    second = client.post(url, follow=True)
    assert second.status_code == 200
    assert "already ended (cancelled)" in second.content.decode()


def test_the_cancel_button_shows_for_operators_while_the_run_is_not_finished(
    queued_run: Run, operator: User, reviewer: User
) -> None:
    url = reverse("runs:detail", args=[queued_run.pk])
    cancel = reverse("runs:cancel", args=[queued_run.pk])
    assert cancel in client_for(operator).get(url).content.decode()
    assert cancel not in client_for(reviewer).get(url).content.decode()
    client_for(operator).post(cancel)
    assert cancel not in client_for(operator).get(url).content.decode()


def test_cancel_needs_a_csrf_token(queued_run: Run, operator: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)
    assert client.post(reverse("runs:cancel", args=[queued_run.pk])).status_code == 403
    queued_run.refresh_from_db()
    assert queued_run.status == RunStatus.QUEUED


# --------------------------------------------------------------------------- detail
def test_the_detail_page_lists_steps_rollback_plan_and_transcript(
    queued_run: Run, reviewer: User
) -> None:
    response = client_for(reviewer).get(reverse("runs:detail", args=[queued_run.pk]))
    page = response.content.decode()
    steps = list(Step.objects.filter(run=queued_run).order_by("phase", "position"))
    for step in steps:
        assert f'data-step-id="{step.pk}"' in page
    assert "the first hello" in page and "rollback-1" in page
    assert [r.step.key for r in response.context["main_steps"]] == ["first", "second"]
    assert [r.step.key for r in response.context["rollback_steps"]] == ["rollback-1"]
    assert "·" in page  # pending mark
    assert "0/2" in page
    # transcript: run.created then plan.created, rendered with seqs for the live client
    assert 'data-seq="1"' in page and 'data-seq="2"' in page
    assert "task &#x27;Two hellos&#x27; submitted by olivia" in page
    assert "plan v1 (operator): 2 steps" in page
    config = response.context["live_config"]
    assert (config["run"], config["lastSeq"], config["finished"]) == (queued_run.pk, 2, False)
    assert 'id="run-live-config"' in page and "run.js" in page


def test_the_detail_page_of_an_invalid_plan_shows_its_problems(
    noop_tool: Tool, operator: User
) -> None:
    run = run_submit_plan(
        title="Broken", document={"steps": [{"id": "x", "action": "nope"}]}, submitted_by=None
    )
    page = client_for(operator).get(reverse("runs:detail", args=[run.pk])).content.decode()
    assert "invalid, 1 problem" in page and "steps[0].action" in page
    assert "its plan was not valid" in page
    assert reverse("runs:cancel", args=[run.pk]) not in page  # the run already ended


@pytest.mark.parametrize(
    ("kind", "payload", "expected"),
    [
        (
            "run.status",
            {"from_status": "queued", "to_status": "executing"},
            "run queued → executing",
        ),
        (
            "step.status",
            {
                "step": "b",
                "from_status": "running",
                "to_status": "failed",
                "attempt": 3,
                "error": "boom",
            },
            "b running → failed (attempt 3): boom",
        ),
        ("run.cancel_requested", {"by": None}, "cancel requested by the system"),
        ("something.new", {"x": 1}, '{"x": 1}'),
    ],
)
def test_transcript_events_read_as_one_line(
    kind: str, payload: dict[str, Any], expected: str
) -> None:
    assert event_summary(kind, payload) == expected


def test_a_long_event_summary_is_cut_to_one_short_line() -> None:
    summary = event_summary(
        "run.status", {"from_status": "a", "to_status": "b", "reason": "x" * 999}
    )
    assert len(summary) == 200 and summary.endswith("…")


# --------------------------------------------------------------------------- tools
def test_the_tools_page_lists_each_tool_with_its_parameters_and_flags(reviewer: User) -> None:
    Tool.objects.create(
        name="deploy",
        kind="shell",
        config={"argv": ["/bin/true"]},
        parameters_schema={
            "type": "object",
            "properties": {
                "environment": {"type": "string", "enum": ["staging", "production"]},
                "version": {"type": "string", "description": "what to ship"},
            },
            "required": ["environment"],
        },
        sensitive=True,
        timeout_seconds=90,
    )
    Tool.objects.create(name="old_tool", kind="python", config={}, enabled=False)
    page = client_for(reviewer).get(reverse("runs:tools")).content.decode()
    assert "deploy" in page and "shell" in page
    assert "environment" in page and "staging, production" in page and "what to ship" in page
    assert "sensitive" in page and "90 s" in page
    assert "old_tool" in page and "disabled" in page


# --------------------------------------------------------------------------- login
def render_login(settings: Any, *, show: bool) -> str:
    settings.DEBUG = False
    settings.PLANNERWEB_SHOW_DEMO_LOGINS = show
    request = RequestFactory().get("/accounts/login/")
    request.user = AnonymousUser()
    request.session = {}  # type: ignore[assignment]
    response = LoginView.as_view()(request)
    return response.render().content.decode()


def test_the_login_page_lists_the_demo_logins_when_enabled(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLANNERWEB_DEMO_PASSWORD", raising=False)
    page = render_login(settings, show=True)
    assert "Demo logins" in page
    assert "<code>operator</code>" in page and "<code>admin</code>" in page


def test_the_login_page_hides_the_demo_logins_by_default(settings: Any) -> None:
    page = render_login(settings, show=False)
    assert "Demo logins" not in page
    assert 'name="username"' in page and 'name="password"' in page


def test_the_login_page_never_prints_a_password_taken_from_the_environment(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANNERWEB_DEMO_PASSWORD", "s3cret-demo")
    page = render_login(settings, show=True)
    assert "s3cret-demo" not in page and "$PLANNERWEB_DEMO_PASSWORD" in page


def test_a_long_transcript_shows_its_newest_events_and_says_how_many_are_hidden(
    queued_run: Run, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runs.views.detail.TRANSCRIPT_LIMIT", 1)
    response = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk]))
    page = response.content.decode()
    assert 'data-seq="2"' in page and 'data-seq="1"' not in page
    assert "1 earlier event not shown" in page
    assert response.context["live_config"]["lastSeq"] == 2


def test_the_whole_transcript_pages_back_from_the_run_page_one_stretch_at_a_time(
    queued_run: Run, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runs.views.detail.TRANSCRIPT_LIMIT", 1)
    monkeypatch.setattr("runs.views.transcript.TRANSCRIPT_LIMIT", 1)
    client = client_for(operator)
    transcript = reverse("runs:transcript", args=[queued_run.pk])
    detail = client.get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    assert f'href="{transcript}?before=2"' in detail  # the one hidden event, seq 1

    oldest = client.get(transcript, {"before": 2})
    page = oldest.content.decode()
    assert 'data-seq="1"' in page and 'data-seq="2"' not in page
    assert (oldest.context["older_before"], oldest.context["newer_before"]) == (None, 3)
    assert "Earlier events" not in page and 'href="?before=3"' in page

    newest = client.get(transcript, {"before": 3})
    assert [e.seq for e in newest.context["events"]] == [2]
    assert (newest.context["older_before"], newest.context["newer_before"]) == (2, None)
    assert [e.seq for e in client.get(transcript).context["events"]] == [2]  # no before: newest


@pytest.mark.parametrize("before", ["abc", "0", "-1", "1.5", "\u0663"])
def test_a_transcript_page_refuses_a_bad_before_with_a_clear_message(
    queued_run: Run, operator: User, before: str
) -> None:
    url = reverse("runs:transcript", args=[queued_run.pk])
    response = client_for(operator).get(url, {"before": before})
    assert response.status_code == 400
    assert "before must be a whole number of 1 or more" in response.content.decode()


def test_the_transcript_of_a_missing_run_is_404(operator: User) -> None:
    response = client_for(operator).get(reverse("runs:transcript", args=[999_999]))
    assert response.status_code == 404


# --------------------------------------------------------------------------- list filters
def _titles(response: Any) -> list[str]:
    return [run.task.title for run in response.context["page"].object_list]


@pytest.fixture
def three_runs(noop_tool: Tool, operator: User, reviewer: User) -> list[Run]:
    """Two by olivia (one failed), one by rob made two days ago."""
    from datetime import timedelta

    from django.utils import timezone

    a = run_submit_plan(title="Migrate users", document=VALID_PLAN, submitted_by=operator)
    b = run_submit_plan(
        title="Broken deploy",
        document={"steps": [{"id": "x", "action": "nope"}]},
        submitted_by=operator,
    )
    c = run_submit_plan(title="Old migration", document=VALID_PLAN, submitted_by=reviewer)
    Run.objects.filter(pk=c.pk).update(created_at=timezone.now() - timedelta(days=2))
    return [a, b, c]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["Broken deploy", "Migrate users", "Old migration"]),
        ({"status": "failed"}, ["Broken deploy"]),
        ({"submitter": "rob"}, ["Old migration"]),
        ({"submitter": "olivia", "status": "queued"}, ["Migrate users"]),
        ({"q": "MIGRAT"}, ["Migrate users", "Old migration"]),
        ({"q": "deploy"}, ["Broken deploy"]),
    ],
)
def test_the_run_list_filters_by_status_submitter_and_search(
    params: dict[str, str], expected: list[str], three_runs: list[Run], operator: User
) -> None:
    response = client_for(operator).get(reverse("runs:list"), params)
    assert sorted(_titles(response)) == expected


def test_the_run_list_finds_a_run_by_its_number(three_runs: list[Run], operator: User) -> None:
    response = client_for(operator).get(reverse("runs:list"), {"q": f"#{three_runs[1].pk}"})
    assert _titles(response) == ["Broken deploy"]


def test_the_run_list_filters_by_an_inclusive_date_range(
    three_runs: list[Run], operator: User
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    today = timezone.now().date()
    client = client_for(operator)
    only_today = client.get(reverse("runs:list"), {"created_from": today.isoformat()})
    assert sorted(_titles(only_today)) == ["Broken deploy", "Migrate users"]
    two_days_ago = (today - timedelta(days=2)).isoformat()
    that_day = client.get(
        reverse("runs:list"), {"created_from": two_days_ago, "created_to": two_days_ago}
    )
    assert _titles(that_day) == ["Old migration"]


def test_a_bad_date_range_is_reported_and_ignored(three_runs: list[Run], operator: User) -> None:
    client = client_for(operator)
    backwards = client.get(
        reverse("runs:list"), {"created_from": "2030-01-02", "created_to": "2030-01-01"}
    )
    assert "The end date is before the start date." in backwards.content.decode()
    assert _titles(backwards) == []  # the valid half (from 2030) still applies
    garbage = client.get(reverse("runs:list"), {"created_from": "yesterday-ish"})
    assert garbage.status_code == 200
    assert "Enter a valid date." in garbage.content.decode()
    assert len(_titles(garbage)) == 3


def test_pager_links_keep_the_filters(noop_tool: Tool, operator: User) -> None:
    for i in range(51):
        run_submit_plan(title=f"Task {i:02d}", document=VALID_PLAN, submitted_by=operator)
    page = client_for(operator).get(reverse("runs:list"), {"submitter": "olivia"}).content.decode()
    assert "?submitter=olivia&amp;page=2" in page


def test_an_htmx_request_gets_only_the_table_that_refreshes_itself(
    three_runs: list[Run], reviewer: User
) -> None:
    client = client_for(reviewer)
    response = client.get(
        reverse("runs:list"), {"status": "queued"}, headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="runs-table"')
    assert "<html" not in page
    assert 'hx-get="/?status=queued"' in page and 'hx-trigger="runs-changed"' in page
    full = client.get(reverse("runs:list")).content.decode()
    assert "<html" in full and "runs/list.js" in full and "htmx-2.min.js" in full


# --------------------------------------------------------------------------- plan check
def check(client: Client, text: str) -> str:
    response = client.post(reverse("runs:check"), {"plan": text})
    assert response.status_code == 200
    return response.content.decode()


def test_the_plan_check_shows_problems_without_creating_a_run(
    noop_tool: Tool, operator: User
) -> None:
    client = client_for(operator)
    bad = check(client, json.dumps({"steps": [{"id": "a", "action": "launch_rockets"}]}))
    assert 'data-plan-check="invalid"' in bad and "launch_rockets" in bad
    assert "steps[0].action" in bad
    good = check(client, json.dumps(VALID_PLAN))
    assert 'data-plan-check="valid"' in good and "2 steps" in good
    syntax = check(client, "steps:\n  - id: a\n    action: [unclosed\n")
    assert 'data-plan-check="syntax"' in syntax and "invalid YAML" in syntax
    assert "checked as you type" in check(client, "   ")
    assert Run.objects.count() == 0


def test_the_plan_check_is_for_operators_only_and_needs_post(
    reviewer: User, outsider: User, operator: User
) -> None:
    url = reverse("runs:check")
    assert client_for(reviewer).post(url, {"plan": "steps: []"}).status_code == 403
    assert client_for(outsider).post(url, {"plan": "steps: []"}).status_code == 403
    assert Client().post(url, {"plan": "steps: []"}).status_code == 302
    assert client_for(operator).get(url).status_code == 405


def test_the_new_run_page_checks_the_plan_with_htmx_as_it_is_typed(operator: User) -> None:
    page = client_for(operator).get(reverse("runs:new")).content.decode()
    assert f'hx-post="{reverse("runs:check")}"' in page and 'id="plan-check"' in page


# --------------------------------------------------------------------------- graph + live
def test_the_detail_page_draws_the_plan_graph_with_status_marks_and_progress(
    queued_run: Run, operator: User
) -> None:
    first, second = Step.objects.filter(run=queued_run, phase="main").order_by("position")
    Step.objects.filter(pk=first.pk).update(status="succeeded")
    response = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk]))
    page = response.content.decode()
    assert "<svg" in page and 'class="edge"' in page and 'data-edge="first→second"' in page
    assert f'class="node status-succeeded" data-node-step-id="{first.pk}"' in page
    assert f'class="node status-pending" data-node-step-id="{second.pk}"' in page
    assert '<progress data-progress-bar max="2" value="1">' in page
    assert response.context["live_config"]["heartbeatSeconds"] > 0


def test_a_plan_too_big_to_draw_gets_the_table_only(
    queued_run: Run, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runs.views.detail.GRAPH_LIMIT", 1)
    page = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    assert "<svg" not in page and "too many to draw" in page
    assert 'data-step-key="second"' in page


def test_the_live_fragment_renders_steps_and_graph_stamped_with_the_last_seq(
    queued_run: Run, reviewer: User, outsider: User
) -> None:
    url = reverse("runs:live", args=[queued_run.pk])
    response = client_for(reviewer).get(url)
    page = response.content.decode()
    assert page.startswith('<section id="run-live" data-live-seq="2">')
    assert "<svg" in page and 'data-step-key="first"' in page and "Plan versions" in page
    assert client_for(outsider).get(url).status_code == 403
    assert client_for(reviewer).get(reverse("runs:live", args=[999_999])).status_code == 404


# --------------------------------------------------------------------------- planner tasks
def task_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The task form's field names carry its prefix (it shares the page with the plan form)."""
    return {f"task-{name}": value for name, value in fields.items()}


def test_an_operator_submits_a_task_for_a_planner_with_defaults_from_settings(
    operator: User, settings: Any
) -> None:
    from runs.models import Task

    settings.PLANNERWEB_PLANNER_MAX_TOKENS = 1234
    page = client_for(operator).get(reverse("runs:new")).content.decode()
    assert 'action="/runs/new/task/"' in page and 'value="1234"' in page
    assert page.count('id="id_title"') == 1 and 'id="id_task-title"' in page
    response = client_for(operator).post(
        reverse("runs:new_task"),
        task_fields(
            {
                "title": "Back up the database",
                "planner": "playbook",
                "mode": "auto",
                "max_replans": 1,
            }
        ),
    )
    task = Task.objects.get(title="Back up the database")
    run = task.runs.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert (task.planner, task.mode, task.max_replans, task.max_tokens) == (
        "playbook",
        "auto",
        1,
        1234,
    )
    assert run.status == RunStatus.QUEUED and run.current_plan is None


@pytest.mark.parametrize(
    ("fields", "bad_field", "message"),
    [
        ({"planner": "playbook", "mode": "iterative"}, "mode", "iterative mode asks a model"),
        ({"planner": "openai", "mode": "auto", "temperature": "5"}, "temperature", "2"),
        ({"planner": "nope", "mode": "auto"}, "planner", "not one of the available choices"),
        ({"planner": "openai", "mode": "sideways"}, "mode", "not one of the available choices"),
        ({"planner": "openai", "mode": "auto", "max_steps": "0"}, "max_steps", "1"),
    ],
)
def test_bad_planner_options_are_shown_inline_and_create_nothing(
    operator: User, fields: dict[str, str], bad_field: str, message: str
) -> None:
    from runs.models import Task

    response = client_for(operator).post(
        reverse("runs:new_task"), task_fields({"title": "t", **fields})
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-field-errors="{bad_field}"' in page
    assert message in response.context["task_form"].errors[bad_field][0]
    assert not Task.objects.exists()


def test_only_operators_may_submit_planner_tasks(reviewer: User, outsider: User) -> None:
    from runs.models import Task

    for user in (reviewer, outsider):
        response = client_for(user).post(
            reverse("runs:new_task"),
            task_fields({"title": "t", "planner": "playbook", "mode": "auto"}),
        )
        assert response.status_code == 403
    assert client_for(None).post(reverse("runs:new_task"), {"title": "t"}).status_code == 302
    assert not Task.objects.exists()


def test_the_live_section_shows_each_plan_versions_diff_and_the_token_totals(
    queued_run: Run, operator: User
) -> None:
    from runs.lifecycle.adoption import plan_diff
    from runs.lifecycle.submit import plan_create
    from runs.models import LlmCall, Plan, Task

    Task.objects.filter(pk=queued_run.task_id).update(planner="openai", model="gpt-4.1")
    v1 = queued_run.current_plan
    assert v1 is not None
    changed = {
        "goal": "Say hello differently",
        "steps": [
            {"id": "first", "action": "noop", "params": {"greeting": "hi"}},
            {"id": "third", "action": "noop", "depends_on": ["first"]},
        ],
    }
    v2 = plan_create(run=queued_run, document=changed, source=Plan.Source.REPLANNER, parent=v1)
    v2.diff = plan_diff(list(v1.steps.filter(phase="main")), list(v2.steps.filter(phase="main")))
    v2.save(update_fields=["diff"])
    LlmCall.objects.create(
        run=queued_run, provider="openai", model="gpt-4.1", purpose="replan", tokens_in=1000
    )
    live = client_for(operator).get(reverse("runs:live", args=[queued_run.pk])).content.decode()
    assert 'data-plan-diff="2"' in live and "against v1" in live
    assert "added: third" in live and "removed: second" in live
    assert (
        "changed: first (params: <code>{}</code> → <code>{&quot;greeting&quot;: &quot;hi&quot;}"
        in live
    )
    assert "1000 tokens in" in live and "Planner openai / gpt-4.1" in live
    page = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    assert 'data-plan-diff="2"' in page and "data-llm-totals-line" in page


# --------------------------------------------------------------------------- detail page cost
def _busy_run(steps: int, operator: User, reviewer: User) -> Run:
    """A failed run with every part of the page in use: budgets, model calls, reviews, replans."""
    from django.utils import timezone

    from reviews.models import ReviewItem
    from runs.lifecycle.submit import plan_create
    from runs.models import LlmCall, Plan, Task

    keys = [f"s{i}" for i in range(steps)]
    document = {
        "goal": "Many steps",
        "steps": [
            {"id": k, "action": "noop", "depends_on": keys[i - 1 : i]} for i, k in enumerate(keys)
        ],
        "rollback": [{"action": "noop"}],
    }
    run = run_submit_plan(title="Busy", document=document, submitted_by=operator)
    v2 = plan_create(
        run=run, document=document, source=Plan.Source.REPLANNER, parent=run.current_plan
    )
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(
        current_plan=v2,
        status=RunStatus.FAILED,
        started_at=now,
        finished_at=now,
        cancel_requested_at=now,
        cancel_requested_by=operator,
    )
    Step.objects.filter(plan=v2).update(status="succeeded", started_at=now, finished_at=now)
    Step.objects.filter(plan=v2, key=keys[-1]).update(status="failed", error="boom")
    Task.objects.filter(pk=run.task_id).update(
        planner="openai", model="gpt-4.1", budget_max_steps=1000, budget_max_cost=5
    )
    for purpose in ("plan", "replan"):
        LlmCall.objects.create(run=run, provider="openai", model="gpt-4.1", purpose=purpose)
    for user in (operator, reviewer):
        ReviewItem.objects.create(run=run, kind="escalation", reason_opened="?", assignee=user)
    return run


def test_the_detail_page_makes_at_most_ten_queries_however_many_steps(
    operator: User, reviewer: User, django_assert_max_num_queries: Any
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    Tool.objects.create(name="noop", kind="python", config={"callable": "runs.tools.builtin.noop"})
    small, big = _busy_run(3, operator, reviewer), _busy_run(120, operator, reviewer)
    client = client_for(operator)
    counts = []
    for run in (small, big):
        with CaptureQueriesContext(connection) as queries:
            page = client.get(reverse("runs:detail", args=[run.pk])).content.decode()
        counts.append(len(queries))
        # every part is on the page: retry, budgets, model calls, reviews, both versions
        assert "Retry from step" in page and "data-budgets" in page and "data-llm-usage" in page
        assert page.count("data-review-item=") == 2 and 'data-plan-diff="2"' not in page
        assert "<strong>v2</strong>" in page and "<strong>v1</strong>" in page
    assert counts[0] == counts[1], counts  # the same whatever the size
    with django_assert_max_num_queries(10):  # session, user and groups included
        client.get(reverse("runs:detail", args=[big.pk]))
    with django_assert_max_num_queries(9):  # the live part alone
        client.get(reverse("runs:live", args=[big.pk]))


def test_the_step_rows_escape_every_value_and_keep_what_run_js_reads() -> None:
    from datetime import UTC, datetime, timedelta

    from runs.templatetags.run_page import step_rows
    from runs.views.detail import _step_row

    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    step = Step(
        pk=7,
        key="k<1>",
        phase="main",
        position=0,
        tool_name="t&t",
        params={"q": "<x>"},
        depends_on=["a'", "b"],
        description='say "hi"',
        status="failed",
        attempts=2,
        result={"r": 1},
        error="<boom>",
        started_at=at,
        finished_at=at + timedelta(seconds=1.125),
        verdict="fail",
        verdict_reason="<why>",
    )
    html = step_rows([_step_row(step)])
    assert html.startswith(
        '<tr data-step-id="7" data-step-key="k&lt;1&gt;" data-phase="main" data-status="failed"'
        ' data-started-at="2026-01-02T03:04:05.678000+00:00">'
    )
    for cell in (
        '<td class="num">1</td>',
        '<div class="muted">say &quot;hi&quot;</div><div class="muted">after a&#x27;, b</div>',
        "<code>t&amp;t</code>",
        '<span class="mark">✗</span> <span class="label">failed</span>',
        '<span class="verdict verdict-fail">fail</span><div class="muted">&lt;why&gt;</div>',
        '<td class="num" data-step-attempts>2</td>',
        "<td data-step-started>03:04:05</td><td data-step-finished>03:04:06</td>",
        '<td class="num" data-step-took>1.13 s</td>',  # floatformat rounds half up
        "&quot;q&quot;: &quot;&lt;x&gt;&quot;",
        '<details class="error" open><summary>error</summary><pre>&lt;boom&gt;</pre>',
    ):
        assert cell in html, cell
    idle = step_rows([_step_row(Step(pk=8, key="p", status="pending", params={}))])
    assert "data-started-at" not in idle and "<td data-step-verdict>—</td>" in idle
    assert '<td class="num" data-step-took>—</td>' in idle and "<summary>result" not in idle


@pytest.mark.parametrize("value", [0.0, 0.5, 1.5, 2.5, 31.4999, 180.5, 1234.5])
def test_graph_coordinates_are_rounded_as_floatformat_rounds_them(value: float) -> None:
    from django.template.defaultfilters import floatformat

    from runs.templatetags.run_page import _whole

    assert _whole(value) == floatformat(value, 0)

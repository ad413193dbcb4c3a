"""The run page: steps, graph, transcript summaries, the live part, budgets, cancel, query count."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from runs.lifecycle.submit import run_submit_plan
from runs.models import Run, RunStatus, Step, Tool
from runs.views import event_summary
from tests.runs.api.conftest import api_as
from tests.runs.views.conftest import VALID_PLAN, client_for

pytestmark = pytest.mark.django_db


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
    assert (config["run"], config["lastSeq"], config["closed"]) == (queued_run.pk, 2, False)
    assert 'id="run-live-config"' in page and "run.js" in page


def test_each_step_shows_its_idempotency_key_with_its_params(
    queued_run: Run, reviewer: User
) -> None:
    page = client_for(reviewer).get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    for step in Step.objects.filter(run=queued_run):
        assert f"idempotency key <code>{step.idempotency_key}</code>" in page


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
                "step_id": 7,
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


def test_a_long_transcript_shows_its_newest_events_and_says_how_many_are_hidden(
    queued_run: Run, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runs.views.detail.TRANSCRIPT_LIMIT", 1)
    response = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk]))
    page = response.content.decode()
    assert 'data-seq="2"' in page and 'data-seq="1"' not in page
    assert "1 earlier event not shown" in page
    assert response.context["live_config"]["lastSeq"] == 2


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
    # The bar has a segment per outcome: one succeeded, one pending (never a plain green bar).
    assert 'data-outcome="succeeded" data-count="1"' in page
    assert 'data-outcome="pending" data-count="1"' in page
    assert 'aria-label="2 steps: 1 succeeded, 1 pending"' in page
    assert response.context["live_config"]["heartbeatSeconds"] > 0


def test_the_graph_draws_rollback_steps_below_and_wraps_long_step_names(
    noop_tool: Tool, operator: User
) -> None:
    document = {
        "goal": "Undo what was done",
        "steps": [
            {
                "id": "apply_the_billing_service_configuration",
                "action": "noop",
                "undo": {"action": "noop", "description": "put it back"},
            }
        ],
        "rollback": [{"action": "noop", "description": "tell the team"}],
    }
    run = run_submit_plan(title="Undo", document=document, submitted_by=operator)
    response = client_for(operator).get(reverse("runs:detail", args=[run.pk]))
    page = response.content.decode()
    rollback = Step.objects.filter(run=run, phase="rollback").order_by("position")
    assert rollback.count() == 2
    for step in rollback:
        assert f'data-node-step-id="{step.pk}" data-phase="rollback"' in page
    linked = next(s for s in rollback if s.undoes)
    assert linked.undoes == "apply_the_billing_service_configuration"
    assert 'class="edge undo"' in page
    assert f'data-edge="{linked.key}→apply_the_billing_service_configuration"' in page
    assert "undoes apply_the_billing_service_configuration)</title>" in page
    # The long name wraps: two lines, the whole name kept for the browser's own fitting.
    assert '<tspan x="28" y="18">apply_the_' in page
    assert 'data-full="apply_the_billing_service_configuration"' in page


def test_a_plan_too_big_to_draw_gets_the_table_only(
    queued_run: Run, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runs.graph.GRAPH_LIMIT", 1)
    page = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    assert "<svg" not in page and "too many to draw" in page
    assert 'data-step-key="second"' in page


def test_the_live_fragment_renders_steps_and_graph_stamped_with_the_last_seq(
    queued_run: Run, reviewer: User, outsider: User
) -> None:
    url = reverse("runs:live", args=[queued_run.pk])
    response = client_for(reviewer).get(url)
    page = response.content.decode()
    assert page.startswith('<section id="run-live" data-live-seq="2" data-run-closed="false"')
    assert "<svg" in page and 'data-step-key="first"' in page and "Plan versions" in page
    assert client_for(outsider).get(url).status_code == 403
    assert client_for(reviewer).get(reverse("runs:live", args=[999_999])).status_code == 404


def test_the_live_section_shows_each_plan_versions_diff_and_the_token_totals(
    queued_run: Run, operator: User
) -> None:
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
    plan_create(run=queued_run, document=changed, source=Plan.Source.REPLANNER, parent=v1)
    LlmCall.objects.create(
        run=queued_run, provider="openai", model="gpt-4.1", purpose="replan", tokens_in=1000
    )
    live = client_for(operator).get(reverse("runs:live", args=[queued_run.pk])).content.decode()
    assert 'data-plan-diff="2"' in live and "against v1" in live
    assert "added: third" in live and "removed: second" in live
    assert 'data-plan-diff="1">first version' in live
    assert (
        '<span data-diff-field="params.greeting">params.greeting: <ins>&quot;hi&quot;</ins>' in live
    )
    assert "plan goal: <del>&quot;Say hello twice&quot;</del> → <ins>&quot;Say hello" in live
    # The description the new version left out: removed, field by field.
    assert "description: <del>&quot;the first hello&quot;</del>" in live
    assert "1000 tokens in" in live and "Planner openai / gpt-4.1" in live
    page = client_for(operator).get(reverse("runs:detail", args=[queued_run.pk])).content.decode()
    assert 'data-plan-diff="2"' in page and "data-llm-totals-line" in page


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
        assert page.count("data-review-item=") == 2
        # v2 repeats v1: its diff says so, without a query of its own
        assert (
            'data-plan-diff="2">\n    <li>against v1: <span class="muted" data-diff="same">' in page
        )
        assert "<strong>v2</strong>" in page and "<strong>v1</strong>" in page
    assert counts[0] == counts[1], counts  # the same whatever the size
    with django_assert_max_num_queries(10):  # session, user and groups included
        client.get(reverse("runs:detail", args=[big.pk]))
    # The live part alone: it carries the facts (budgets) and the timeline's waits too.
    with django_assert_max_num_queries(10):
        client.get(reverse("runs:live", args=[big.pk]))


def test_the_run_page_shows_the_budgets_and_the_usage_so_far(
    operator: User, noop_tool: Any
) -> None:
    response = api_as(operator).post(
        "/tasks", {"plan": VALID_PLAN, "budget_max_steps": 5, "budget_max_tokens": 1000}
    )
    run_id = response.json()["id"]
    client = Client()
    client.force_login(operator)
    html = client.get(f"/runs/{run_id}/").content.decode()
    assert "steps 0 of 5" in html and "tokens 0 of 1000" in html


def test_a_run_without_budgets_shows_none(operator: User, noop_tool: Any, settings: Any) -> None:
    settings.PLANNERWEB_BUDGET_MAX_STEPS = 0
    settings.PLANNERWEB_BUDGET_MAX_TOKENS = 0
    settings.PLANNERWEB_BUDGET_MAX_COST = 0
    settings.PLANNERWEB_BUDGET_MAX_WALL_SECONDS = 0
    run_id = api_as(operator).post("/tasks", {"plan": VALID_PLAN}).json()["id"]
    client = Client()
    client.force_login(operator)
    assert "data-budgets" not in client.get(f"/runs/{run_id}/").content.decode()


def test_a_running_run_with_a_cut_transcript_keeps_its_old_waits_and_tool_questions_in_ten_queries(
    queued_run: Run,
    operator: User,
    monkeypatch: pytest.MonkeyPatch,
    django_assert_max_num_queries: Any,
) -> None:
    """Only the newest events are drawn; a lock wait older than them still reaches the timeline."""
    from django.utils import timezone

    from reviews.models import ReviewItem
    from runs.models import TranscriptEvent

    monkeypatch.setattr("runs.views.detail.TRANSCRIPT_LIMIT", 2)
    Run.objects.filter(pk=queued_run.pk).update(status=RunStatus.EXECUTING)
    seq = TranscriptEvent.objects.filter(run=queued_run).count()
    waits = [
        ("step.lock_waiting", {"step": "first", "lock": "db"}),
        ("step.lock_acquired", {"step": "first", "lock": "db"}),
    ]
    noise = [("run.status", {"from_status": "queued", "to_status": "executing"})] * 3
    for offset, (kind, payload) in enumerate([*waits, *noise], start=1):
        TranscriptEvent.objects.create(
            run=queued_run,
            seq=seq + offset,
            role="executor",
            kind=kind,
            payload=payload,
            created_at=timezone.now(),
        )
    ReviewItem.objects.create(
        run=queued_run,
        kind="elicitation",
        reason_opened="?",
        context={"message": "Which region?", "schema": {"properties": {"region": {}}}},
    )
    client = client_for(operator)
    with django_assert_max_num_queries(10):
        response = client.get(reverse("runs:detail", args=[queued_run.pk]))
    page = response.content.decode()
    assert f'data-seq="{seq + 5}"' in page and f'data-seq="{seq + 3}"' not in page
    assert [(w["step"], w["kind"]) for w in response.context["waits_json"]] == [("first", "lock")]
    assert response.context["waits_json"][0]["end"] is not None
    assert "Which region?" in page and "data-elicitation-form" in page

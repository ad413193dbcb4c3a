"""Review pages: the permission matrix, the queue's filters and overdue marks, deciding from the page."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from reviews.models import AuditEntry, ReviewItem
from runs.lifecycle.escalations import escalation_open, step_gate_open
from runs.models import Plan, Run, Tool
from runs.plan_versions import content_hash, plan_hash
from tests.reviews.conftest import all_ticks

pytestmark = pytest.mark.django_db


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def pages(item: ReviewItem) -> list[tuple[str, str]]:
    i = item.pk
    return [
        ("get", "/reviews/"),
        ("get", f"/reviews/{i}/"),
        ("get", "/reviews/audit/"),
        ("get", "/reviews/audit.csv"),
        ("post", f"/reviews/{i}/claim/"),
        ("post", f"/reviews/{i}/assign/"),
        ("post", f"/reviews/{i}/approve/"),
        ("post", f"/reviews/{i}/reject/"),
        ("post", f"/reviews/{i}/edit/"),
        ("post", f"/reviews/{i}/save-approve/"),
        ("post", f"/reviews/{i}/resolve/"),
    ]


@pytest.mark.parametrize("role", ["operator", "outsider"])
def test_operators_and_outsiders_are_refused_with_403(
    held: ReviewItem, role: str, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(role))
    for method, url in pages(held):
        response = getattr(client, method)(url, {"reason": "x", "plan": "steps: []"})
        assert response.status_code == 403, (method, url, response.status_code)
    held.refresh_from_db()
    assert held.status == "open" and held.assignee is None


def test_anonymous_users_are_sent_to_the_login_page(held: ReviewItem) -> None:
    client = client_for(None)
    for method, url in pages(held):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


@pytest.mark.parametrize("role", ["reviewer", "admin_user"])
def test_reviewers_and_staff_see_every_page(
    held: ReviewItem, role: str, request: pytest.FixtureRequest
) -> None:
    client = client_for(request.getfixturevalue(role))
    for url in ("/reviews/", f"/reviews/{held.pk}/", "/reviews/audit/", "/reviews/audit.csv"):
        assert client.get(url).status_code == 200, url


def test_the_item_page_shows_the_plan_table_graph_checklist_and_yaml(
    held: ReviewItem, reviewer: User
) -> None:
    html = client_for(reviewer).get(f"/reviews/{held.pk}/").content.decode()
    assert "<code>ship</code>" in html and "sensitive" in html
    assert "<code>read</code> → <code>ship</code>" in html
    # The same SVG graph as the run page: a node per step, an edge per dependency.
    assert html.count('class="node status-pending"') == 2
    assert 'data-edge="read→ship"' in html
    for sentence in held.checklist:
        assert escape(sentence) in html
    assert 'name="plan"' in html and "action: deploy" in html


def test_a_missing_item_is_404_not_500(reviewer: User) -> None:
    client = client_for(reviewer)
    assert client.get("/reviews/999999/").status_code == 404
    assert client.post("/reviews/999999/approve/").status_code == 404
    assert client.post("/reviews/999999/edit/", {"plan": "steps: []"}).status_code == 404


def test_approving_from_the_page_without_the_checklist_shows_what_is_missing(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    response = client.post(
        f"/reviews/{held.pk}/approve/", {**form, "checklist": ["0"]}, follow=True
    )
    assert "Tick every checklist item first" in response.content.decode()
    held.refresh_from_db()
    assert held.status == "open"
    ticks = [str(i) for i in range(len(held.checklist))]
    # A form that does not say which version it approves is refused.
    response = client.post(f"/reviews/{held.pk}/approve/", {"checklist": ticks}, follow=True)
    assert "does not say which plan version it is about" in response.content.decode()
    assert ReviewItem.objects.get(pk=held.pk).status == "open"
    response = client.post(
        f"/reviews/{held.pk}/approve/", {**form, "checklist": ticks}, follow=True
    )
    assert f"Review {held.pk} approved." in response.content.decode()
    assert Run.objects.get(pk=held.run_id).status == "queued"


def test_a_second_decision_says_who_decided_first(
    held: ReviewItem, reviewer: User, admin_user: User
) -> None:
    client_for(reviewer).post(f"/reviews/{held.pk}/reject/", {"reason": "no"})
    response = client_for(admin_user).post(
        f"/reviews/{held.pk}/reject/", {"reason": "me too"}, follow=True
    )
    assert "already rejected by rob" in response.content.decode()


def test_an_invalid_edit_shows_its_problems_inline_and_saves_nothing(
    held: ReviewItem, reviewer: User
) -> None:
    ticks = [str(i) for i in range(len(held.checklist))]
    client = client_for(reviewer)
    form = decision_form(client, held)
    bad_yaml = client.post(
        f"/reviews/{held.pk}/edit/", {**form, "plan": "steps: [", "checklist": ticks}
    )
    assert bad_yaml.status_code == 422 and "data-syntax-error" in bad_yaml.content.decode()
    text = "steps:\n  - {id: a, action: no_such_tool}\n"
    response = client.post(f"/reviews/{held.pk}/edit/", {**form, "plan": text, "checklist": ticks})
    html = response.content.decode()
    assert response.status_code == 422
    assert "steps[0]" in html and "no_such_tool" in html and "nothing was saved" in html
    assert Plan.objects.filter(run=held.run).count() == 1


def test_a_valid_edit_from_the_page_makes_a_new_version(held: ReviewItem, reviewer: User) -> None:
    ticks = [str(i) for i in range(len(held.checklist))]
    text = "steps:\n  - {id: only, action: record, params: {key: k, label: only}}\n"
    client = client_for(reviewer)
    form = decision_form(client, held)
    response = client.post(
        f"/reviews/{held.pk}/edit/", {**form, "plan": text, "checklist": ticks, "reason": "smaller"}
    )
    assert response.status_code == 302
    run = Run.objects.get(pk=held.run_id)
    assert run.current_plan.version == 2 and run.current_plan.created_by == reviewer  # type: ignore[union-attr]


def test_claim_and_assign_from_the_page(held: ReviewItem, reviewer: User, admin_user: User) -> None:
    client_for(reviewer).post(f"/reviews/{held.pk}/claim/")
    held.refresh_from_db()
    assert held.assignee == reviewer
    response = client_for(reviewer).post(
        f"/reviews/{held.pk}/assign/", {"assignee": "nobody-here"}, follow=True
    )
    assert "There is no user" in response.content.decode()
    client_for(reviewer).post(f"/reviews/{held.pk}/assign/", {"assignee": "ada"})
    held.refresh_from_db()
    assert held.assignee == admin_user


def test_the_queue_filters_and_marks_overdue_items(held: ReviewItem, reviewer: User) -> None:
    escalation = escalation_open(
        run_id=held.run_id, cause="budget_breached", reason="tokens 12 > 10"
    )
    ReviewItem.objects.filter(pk=held.pk).update(due_at=timezone.now() - timedelta(minutes=5))
    client = client_for(reviewer)

    def ids(query: str) -> list[int]:
        return [i.pk for i in client.get("/reviews/" + query).context["page"].object_list]

    assert ids("") == [held.pk, escalation.pk]  # overdue first
    assert ids("?kind=escalation") == [escalation.pk]
    assert ids("?overdue=1") == [held.pk]
    assert ids(f"?run={held.run_id}") == [held.pk, escalation.pk]
    assert ids("?run=999999") == []
    assert ids("?age=1h") == []
    assert ids("?status=approved") == []
    assert ids("?assignee=none") == [held.pk, escalation.pk]
    assert ids("?assignee=me") == []
    html = client.get("/reviews/").content.decode()
    assert html.count("data-overdue") == 1
    response = client.get("/reviews/?kind=nope&run=abc&age=forever")
    assert response.status_code == 200
    assert "That filter was ignored" in response.content.decode()


def test_escalation_actions_from_the_page(held: ReviewItem, reviewer: User) -> None:
    item = escalation_open(run_id=held.run_id, cause="partial_run", reason="deploy may have run")
    client = client_for(reviewer)
    response = client.post(f"/reviews/{item.pk}/resolve/", {"action": "abort"}, follow=True)
    assert "Give a reason" in response.content.decode()
    client.post(f"/reviews/{item.pk}/resolve/", {"action": "abort", "reason": "unsafe"})
    item.refresh_from_db()
    assert item.status == "rejected" and item.decision == "abort"


def buttons(html: str) -> list[str]:
    return re.findall(r'data-action="(\w+)"', html)


@pytest.mark.parametrize(
    ("cause", "ship", "read", "expected"),
    [
        ("evaluator_fail", "failed", "succeeded", ["retry", "skip", "edit", "rollback", "abort"]),
        ("evaluator_fail", "failed", "rolled_back", ["abort"]),
        ("budget_breached", "skipped", "succeeded", ["raise_budget", "edit", "rollback", "abort"]),
        ("partial_run", "running", "succeeded", ["retry", "skip", "edit", "rollback", "abort"]),
    ],
)
def test_the_item_page_shows_only_the_actions_that_fit(
    stuck: Callable[..., ReviewItem],
    reviewer: User,
    cause: str,
    ship: str,
    read: str,
    expected: list[str],
) -> None:
    item = stuck(cause, ship=ship, read=read)
    html = client_for(reviewer).get(f"/reviews/{item.pk}/").content.decode()
    assert buttons(html) == expected
    assert ('name="budget_max_steps"' in html) == ("raise_budget" in expected)
    assert ('name="plan"' in html) == ("edit" in expected)


def test_a_run_without_a_plan_gets_a_plan_to_write_and_no_retry(
    operator: User, reviewer: User, tools: dict
) -> None:
    from runs.lifecycle.planning import run_submit_task
    from runs.statemachine import run_transition

    run = run_submit_task(title="paint the fence", submitted_by=operator, planner="playbook")
    run_transition(run_id=run.pk, to="planning")
    run_transition(run_id=run.pk, to="escalated", reason="no playbook matches")
    item = escalation_open(run_id=run.pk, cause="no_playbook_match", reason="no match")
    client = client_for(reviewer)
    html = client.get(f"/reviews/{item.pk}/").content.decode()
    assert buttons(html) == ["write_plan", "abort"]
    assert 'name="plan"' in html and "goal: paint the fence" in html
    response = client.post(f"/reviews/{item.pk}/resolve/", {"action": "retry"}, follow=True)
    assert "allowed: write_plan, abort" in response.content.decode()
    assert ReviewItem.objects.get(pk=item.pk).status == "open"
    text = "goal: paint it\nsteps:\n  - {id: a, action: record, params: {key: k, label: a}}\n"
    ticks = [str(i) for i in all_ticks(item)]
    client.post(
        f"/reviews/{item.pk}/resolve/", {"action": "write_plan", "plan": text, "checklist": ticks}
    )
    item.refresh_from_db()
    assert (item.status, item.decision) == ("edited", "write_plan")
    assert Run.objects.get(pk=run.pk).status == "queued"


def test_raising_the_budget_from_the_page(stuck: Callable[..., ReviewItem], reviewer: User) -> None:
    item = stuck("budget_breached", ship="skipped")
    client = client_for(reviewer)
    form = decision_form(client, item)
    response = client.post(
        f"/reviews/{item.pk}/resolve/",
        {**form, "action": "raise_budget", "budget_max_steps": "0"},
        follow=True,
    )
    assert "New budgets:" in response.content.decode()
    assert ReviewItem.objects.get(pk=item.pk).status == "open"
    client.post(
        f"/reviews/{item.pk}/resolve/",
        {
            **form,
            "action": "raise_budget",
            "budget_max_steps": "50",
            "checklist": [str(i) for i in all_ticks(item)],
        },
    )
    item.refresh_from_db()
    assert (item.status, item.decision) == ("approved", "raise_budget")
    assert item.run.task.budget_max_steps == 50


def test_the_audit_page_filters_per_reviewer(held: ReviewItem, reviewer: User) -> None:
    client = client_for(reviewer)
    client.post(f"/reviews/{held.pk}/claim/")
    entries = client.get("/reviews/audit/?actor=rob").context["page"].object_list
    assert [e.action for e in entries] == ["review.claimed"]
    assert client.get("/reviews/audit/?run=x").status_code == 200


def test_the_audit_page_shows_an_abort_as_the_decision_taken(
    held: ReviewItem, reviewer: User
) -> None:
    item = escalation_open(run_id=held.run_id, cause="partial_run", reason="deploy may have run")
    client = client_for(reviewer)
    client.post(f"/reviews/{item.pk}/resolve/", {"action": "abort", "reason": "unsafe"})
    html = client.get(f"/reviews/audit/?item={item.pk}").content.decode()
    assert "<td data-outcome>abort</td>" in html
    assert "<td data-outcome>rejected</td>" not in html


def test_the_audit_page_offers_the_actors_in_the_log_as_reviewer_choices(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    client.post(f"/reviews/{held.pk}/claim/")
    html = client.get("/reviews/audit/?actor=rob").content.decode()
    assert '<select name="actor">' in html
    assert '<option value="rob" selected>rob</option>' in html


def test_the_audit_page_says_whether_the_hash_chain_verifies(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    client.post(f"/reviews/{held.pk}/claim/")
    count = AuditEntry.objects.count()
    assert f"chain verified: {count} entries" in client.get("/reviews/audit/").content.decode()
    AuditEntry.objects.filter(seq=1).update(reason="rewritten")
    html = client.get("/reviews/audit/").content.decode()
    assert "chain broken at entry #1: entry #1: content does not match its hash" in html


# --------------------------------------------------------------------------- live queue, run page
def test_an_htmx_refresh_of_the_queue_gets_the_table_alone_with_the_filters_kept(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    full = client.get("/reviews/?kind=plan_approval")
    assert b'id="reviews-live-config"' in full.content and b"reviews/queue.js" in full.content
    partial = client.get("/reviews/?kind=plan_approval&kind=x", headers={"HX-Request": "true"})
    body = partial.content.decode()
    assert partial.status_code == 200
    assert body.lstrip().startswith('<div id="reviews-table"') and "<html" not in body
    assert f'data-item-id="{held.pk}"' in body
    assert [i.pk for i in partial.context["page"].object_list] == [held.pk]
    filtered_out = client.get("/reviews/?kind=escalation", headers={"HX-Request": "true"})
    assert f'data-item-id="{held.pk}"' not in filtered_out.content.decode()


def test_the_run_page_links_reviewers_to_its_open_review_items(
    held: ReviewItem, reviewer: User, operator: User
) -> None:
    link = f'href="/reviews/{held.pk}/"'
    as_reviewer = client_for(reviewer).get(f"/runs/{held.run_id}/").content.decode()
    assert "Waiting for a reviewer" in as_reviewer and link in as_reviewer
    # Operators see that a review is pending, but get no link to a page they may not open.
    as_operator = client_for(operator).get(f"/runs/{held.run_id}/").content.decode()
    assert f'data-review-item="{held.pk}"' in as_operator and link not in as_operator
    live = client_for(reviewer).get(f"/runs/{held.run_id}/live/").content.decode()
    assert link in live


def test_the_run_page_tells_review_events_in_words_and_drops_decided_items(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    client.post(f"/reviews/{held.pk}/claim/")
    ticks = {"checklist": [str(i) for i in range(len(held.checklist))], "reason": "fine"}
    form = decision_form(client, held)
    assert client.post(f"/reviews/{held.pk}/approve/", {**form, **ticks}).status_code == 302
    page = client.get(f"/runs/{held.run_id}/")
    summaries = [e.summary for e in page.context["events"] if e.kind.startswith("review.")]
    assert summaries == [
        f"review {held.pk} opened: plan approval of plan v1: {held.reason_opened}",
        f"review {held.pk} assigned to rob",
        f"review {held.pk} (plan approval) approved by rob, plan v1: fine",
    ]
    assert page.context["open_reviews"] == []
    assert b"Waiting for a reviewer" not in page.content


# --------------------------------------------------------------------------- bound decisions
def decision_form(client: Client, item: ReviewItem) -> dict[str, str]:
    """The decision form's hidden fields and editor text, as the page renders them."""
    html = client.get(f"/reviews/{item.pk}/").content.decode()
    fields = dict(
        re.findall(r'<input type="hidden" name="(plan_\w+|params_hash)" value="([^"]*)"', html)
    )
    editor = re.search(r'<textarea id="plan" name="plan"[^>]*>(.*?)</textarea>', html, re.S)
    if editor is not None:
        fields["plan"] = unescape(editor.group(1))
    return fields


def test_the_page_binds_the_decision_to_the_version_and_hash_it_shows(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    form = decision_form(client, held)
    assert form["plan_version"] == "1" and form["plan_hash"] == plan_hash(held.plan)
    html = client.get(f"/reviews/{held.pk}/").content.decode()
    assert "data-unsaved-warning" in html and "reviews/item.js" in html
    assert "Save and approve" in html and "Approve v1" in html


def test_approving_while_the_editor_holds_changes_is_refused_and_nothing_runs(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    ticks = [str(i) for i in range(len(held.checklist))]
    form = decision_form(client, held)
    edited = {**form, "plan": form["plan"].replace("ship", "shipped"), "checklist": ticks}
    response = client.post(f"/reviews/{held.pk}/approve/", edited)
    # The page comes back with the edit still in the editor, so nothing typed is lost.
    assert response.status_code == 409
    assert "unsaved changes to plan v1" in response.content.decode()
    assert "shipped" in response.content.decode()
    assert response.content.decode().count('name="checklist" value="0" checked') == 1
    held.refresh_from_db()
    assert held.status == "open" and held.approvals.count() == 0
    assert Run.objects.get(pk=held.run_id).status == "awaiting_approval"
    # The browser's CRLF line ends, or a changed comment, are no change to the plan.
    same = {**form, "plan": form["plan"].replace("\n", "\r\n") + "# ok\r\n", "checklist": ticks}
    response = client.post(f"/reviews/{held.pk}/approve/", same, follow=True)
    assert f"Review {held.pk} approved." in response.content.decode()


def test_saving_an_edit_waits_for_approval_then_approving_runs_that_version(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    ticks = [str(i) for i in range(len(held.checklist))]
    form = decision_form(client, held)
    text = "steps:\n  - {id: only, action: record, params: {key: k, label: only}}\n"
    response = client.post(
        f"/reviews/{held.pk}/edit/", {**form, "plan": text, "checklist": ticks}, follow=True
    )
    assert "Plan v2 saved; it now waits for approval" in response.content.decode()
    held.refresh_from_db()
    assert (held.status, held.plan.version) == ("open", 2)  # type: ignore[union-attr]
    assert Run.objects.get(pk=held.run_id).status == "awaiting_approval"
    # The form loaded before the save is stale now, whatever its editor holds.
    response = client.post(
        f"/reviews/{held.pk}/approve/", {**form, "checklist": ticks}, follow=True
    )
    assert "is about plan v2, not v1" in response.content.decode()
    assert ReviewItem.objects.get(pk=held.pk).status == "open"
    fresh = decision_form(client, held)
    assert fresh["plan_version"] == "2"
    response = client.post(
        f"/reviews/{held.pk}/approve/", {**fresh, "checklist": ticks}, follow=True
    )
    assert f"Review {held.pk} approved." in response.content.decode()
    run = Run.objects.get(pk=held.run_id)
    assert (run.status, run.current_plan.version) == ("queued", 2)  # type: ignore[union-attr]


def test_save_and_approve_is_an_explicit_button_that_does_both(
    held: ReviewItem, reviewer: User
) -> None:
    client = client_for(reviewer)
    ticks = [str(i) for i in range(len(held.checklist))]
    form = decision_form(client, held)
    text = "steps:\n  - {id: only, action: record, params: {key: k, label: only}}\n"
    response = client.post(
        f"/reviews/{held.pk}/save-approve/", {**form, "plan": text, "checklist": ticks}, follow=True
    )
    assert "Plan v2 saved and approved" in response.content.decode()
    held.refresh_from_db()
    assert (held.status, held.decision, held.plan.version) == ("edited", "edit", 2)  # type: ignore[union-attr]
    assert Run.objects.get(pk=held.run_id).status == "queued"


def test_an_escalation_action_other_than_edit_is_refused_while_the_editor_holds_changes(
    held: ReviewItem, reviewer: User
) -> None:
    Run.objects.filter(pk=held.run_id).update(status="escalated")
    item = escalation_open(run_id=held.run_id, cause="partial_run", reason="deploy may have run")
    client = client_for(reviewer)
    form = decision_form(client, item)
    ticks = [str(i) for i in range(len(item.checklist))]
    changed = {**form, "plan": form["plan"] + "# no\nbad: [", "checklist": ticks}
    response = client.post(
        f"/reviews/{item.pk}/resolve/", {**changed, "action": "rollback"}, follow=True
    )
    assert "unsaved changes to plan v1" in response.content.decode()
    item.refresh_from_db()
    assert item.status == "open"
    stale = {**form, "plan_version": "2", "action": "abort", "reason": "unsafe"}
    response = client.post(f"/reviews/{item.pk}/resolve/", stale, follow=True)
    assert "is about plan v1, not v2" in response.content.decode()
    client.post(f"/reviews/{item.pk}/resolve/", {**changed, "action": "abort", "reason": "x"})
    item.refresh_from_db()
    assert item.status == "rejected"


def test_a_step_gate_page_binds_its_approval_to_the_params_it_shows(
    held: ReviewItem, reviewer: User
) -> None:
    ship = held.plan.steps.get(key="ship")  # type: ignore[union-attr]
    gate = step_gate_open(step_id=ship.pk, threshold=0.6)
    client = client_for(reviewer)
    html = client.get(f"/reviews/{gate.pk}/").content.decode()
    assert "Approve step" in html and "Save and approve" not in html
    form = decision_form(client, gate)
    assert form["params_hash"] == gate.params_hash == content_hash(ship.params)
    ticks = [str(i) for i in range(len(gate.checklist))]
    other = {**form, "params_hash": content_hash({"label": "elsewhere"}), "checklist": ticks}
    response = client.post(f"/reviews/{gate.pk}/approve/", other, follow=True)
    assert escape("The params you reviewed are not those step 'ship' will run with") in (
        response.content.decode()
    )
    assert ReviewItem.objects.get(pk=gate.pk).status == "open"
    response = client.post(f"/reviews/{gate.pk}/approve/", {**form, "checklist": ticks})
    assert ReviewItem.objects.get(pk=gate.pk).status == "approved"


@pytest.mark.parametrize(
    "text",
    ["steps:\n- {id: a, action: noop, params: {n: " + "9" * 5000 + "}}", "a: " + "[" * 1500],
    ids=["huge-int", "deep"],
)
def test_an_edit_beyond_the_parsers_limits_is_a_422_page(
    text: str, held: ReviewItem, reviewer: User
) -> None:
    ticks = [str(i) for i in range(len(held.checklist))]
    response = client_for(reviewer).post(
        f"/reviews/{held.pk}/edit/", {"plan": text, "checklist": ticks}
    )
    assert response.status_code == 422 and "data-syntax-error" in response.content.decode()
    assert Plan.objects.filter(run=held.run).count() == 1


def test_the_item_page_shows_the_prompt_an_llm_step_will_send(
    submit: Callable[..., Run], global_policy: Callable[..., Any], reviewer: User, key: str
) -> None:
    Tool.objects.create(
        name="draft_note",
        kind=Tool.Kind.LLM,
        config={"prompt": "Draft a release note for <{version}>: {changes}"},
        parameters_schema={"type": "object"},
    )
    global_policy("always")
    changes = "{{ steps.read.result.label }}"
    run = submit(
        {
            "goal": "note",
            "steps": [
                {"id": "read", "action": "record", "params": {"key": key, "label": "x"}},
                {
                    "id": "note",
                    "action": "draft_note",
                    "params": {"version": "2.1", "changes": changes},
                    "depends_on": ["read"],
                },
            ],
        }
    )
    item = ReviewItem.objects.get(run=run)
    html = client_for(reviewer).get(f"/reviews/{item.pk}/").content.decode()
    assert html.count("data-prompt") == 1
    assert escape(f"Draft a release note for <2.1>: {changes}") in html


def test_the_item_page_shows_an_agent_steps_instruction_and_allowed_tools(
    submit: Callable[..., Run], global_policy: Callable[..., Any], reviewer: User
) -> None:
    Tool.objects.create(
        name="helper", kind=Tool.Kind.AGENT, config={}, parameters_schema={"type": "object"}
    )
    global_policy("always")
    params = {"instruction": "Find the <slow> table", "tools": ["record", "notify"]}
    run = submit({"steps": [{"id": "look", "action": "helper", "params": params}]})
    item = ReviewItem.objects.get(run=run)
    html = client_for(reviewer).get(f"/reviews/{item.pk}/").content.decode()
    assert html.count("data-agent") == 1
    assert escape("Find the <slow> table") in html
    assert "<code>record</code>, <code>notify</code>" in html

"""Reviews API: the permission matrix, the queue's filters and pages, claim/assign/decide, audit entries."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from reviews.models import ApprovalPolicy, AuditEntry, ReviewItem
from runs.events import event_summary
from runs.lifecycle.claim import run_execute
from runs.lifecycle.escalations import escalation_open
from runs.models import Plan, Run, TranscriptEvent
from runs.plan_versions import content_hash, plan_hash
from tests.reviews.conftest import all_ticks, bound, step
from tests.runs import toolbox
from tests.runs.api.conftest import ApiClient, api_as

pytestmark = pytest.mark.django_db


def endpoints(item: ReviewItem) -> list[tuple[str, str, dict | None]]:
    i = item.pk
    return [
        ("get", "/reviews", None),
        ("get", f"/reviews/{i}", None),
        ("post", f"/reviews/{i}/claim", {}),
        ("post", f"/reviews/{i}/assign", {"assignee": None}),
        ("post", f"/reviews/{i}/decide", {"decision": "reject", "reason": "no"}),
        ("get", "/audit", None),
        ("get", "/audit/csv", None),
    ]


def call(api: ApiClient, method: str, path: str, body: dict | None) -> object:
    return api.get(path) if method == "get" else api.post(path, body)


# --------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("role", ["operator", "outsider"])
def test_operators_and_outsiders_get_403_everywhere_and_change_nothing(
    held: ReviewItem, role: str, request: pytest.FixtureRequest
) -> None:
    api = api_as(request.getfixturevalue(role))
    for method, path, body in endpoints(held):
        response = call(api, method, path, body)
        assert response.status_code == 403, (path, response.status_code)
        assert response.json()["code"] == "forbidden"
    held.refresh_from_db()
    assert (held.status, held.assignee_id) == ("open", None)


def test_anonymous_clients_get_401(held: ReviewItem) -> None:
    for method, path, body in endpoints(held):
        response = call(ApiClient(), method, path, body)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("role", ["reviewer", "admin_user"])
def test_reviewers_and_staff_reach_every_endpoint(
    held: ReviewItem, role: str, request: pytest.FixtureRequest
) -> None:
    api = api_as(request.getfixturevalue(role))
    for method, path, body in endpoints(held)[:4] + endpoints(held)[5:]:
        response = call(api, method, path, body)
        assert response.status_code == 200, (path, response.content[:300])


def test_a_session_needs_the_csrf_header_to_decide(held: ReviewItem, reviewer: User) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(reviewer)
    browser.get("/")
    api = ApiClient(client=browser)
    assert api.post(f"/reviews/{held.pk}/claim").json()["code"] == "csrf_failed"
    ok = api.post(f"/reviews/{held.pk}/claim", X_CSRFToken=browser.cookies["csrftoken"].value)
    assert ok.status_code == 200 and ok.json()["assignee"] == "rob"


# --------------------------------------------------------------------------- queue
def test_the_queue_lists_open_items_with_their_run_and_checklist(
    held: ReviewItem, reviewer: User
) -> None:
    body = api_as(reviewer).get("/reviews").json()
    assert body["total"] == 1 and (body["limit"], body["offset"]) == (50, 0)
    (item,) = body["items"]
    assert item["id"] == held.pk and item["run"] == held.run_id
    assert (item["kind"], item["status"], item["run_status"]) == (
        "plan_approval",
        "open",
        "awaiting_approval",
    )
    assert item["plan_version"] == 1 and item["checklist"] == held.checklist
    assert item["assignee"] is None and item["overdue"] is False


def test_the_queue_filters_like_the_page_and_pages_in_constant_queries(
    held: ReviewItem, reviewer: User, submit: Callable[..., Run], plan_doc: dict
) -> None:
    others = [ReviewItem.objects.get(run=submit(plan_doc)) for _ in range(4)]
    api = api_as(reviewer)
    api.post(f"/reviews/{others[0].pk}/claim")

    def ids(**params: object) -> list[int]:
        response = api.get("/reviews", params)
        assert response.status_code == 200, response.json()
        return [i["id"] for i in response.json()["items"]]

    assert ids(assignee="me") == [others[0].pk]
    assert set(ids(assignee="none")) == {held.pk, *[o.pk for o in others[1:]]}
    assert ids(run=held.run_id) == [held.pk]
    assert ids(kind="escalation") == []
    assert ids(age="7d") == []
    assert len(ids(status="all")) == 5
    page = api.get("/reviews", {"limit": 2, "offset": 2}).json()
    assert page["total"] == 5 and len(page["items"]) == 2

    with CaptureQueriesContext(connection) as small:
        api.get("/reviews", {"limit": 1})
    with CaptureQueriesContext(connection) as large:
        api.get("/reviews", {"limit": 50})
    assert len(small) == len(large)


@pytest.mark.parametrize(
    "params",
    [{"kind": "nope"}, {"status": "done"}, {"age": "3d"}, {"run": "x"}, {"limit": 0}],
)
def test_a_bad_filter_is_422_naming_the_field(
    held: ReviewItem, reviewer: User, params: dict
) -> None:
    response = api_as(reviewer).get("/reviews", params)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == next(iter(params))


def test_an_unknown_item_is_404(reviewer: User) -> None:
    api = api_as(reviewer)
    for response in (
        api.get("/reviews/999999"),
        api.post("/reviews/999999/claim"),
        api.post("/reviews/999999/decide", {"decision": "approve"}),
    ):
        assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_the_detail_has_the_plan_under_review_and_the_approvals(
    held: ReviewItem, reviewer: User, plan_doc: dict
) -> None:
    body = api_as(reviewer).get(f"/reviews/{held.pk}").json()
    assert body["plan"] == plan_doc and body["approvals"] == [] and body["context"] == {}


# --------------------------------------------------------------------------- claim, assign
def test_claim_then_a_second_reviewer_is_refused_until_reassigned(
    held: ReviewItem, reviewer: User, admin_user: User
) -> None:
    rob, ada = api_as(reviewer), api_as(admin_user)
    assert rob.post(f"/reviews/{held.pk}/claim").json()["assignee"] == "rob"
    refused = ada.post(f"/reviews/{held.pk}/claim")
    assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"
    assert "rob" in refused.json()["detail"]
    moved = ada.post(f"/reviews/{held.pk}/assign", {"assignee": "ada"})
    assert moved.status_code == 200 and moved.json()["assignee"] == "ada"
    nobody = ada.post(f"/reviews/{held.pk}/assign", {"assignee": None})
    assert nobody.json()["assignee"] is None


def test_assigning_to_someone_unknown_or_without_the_role_is_refused(
    held: ReviewItem, reviewer: User, operator: User
) -> None:
    api = api_as(reviewer)
    unknown = api.post(f"/reviews/{held.pk}/assign", {"assignee": "ghost"})
    assert unknown.status_code == 422 and unknown.json()["fields"][0]["field"] == "assignee"
    not_reviewer = api.post(f"/reviews/{held.pk}/assign", {"assignee": "olivia"})
    assert not_reviewer.status_code == 403
    held.refresh_from_db()
    assert held.assignee_id is None


# --------------------------------------------------------------------------- decide
@pytest.mark.django_db(transaction=True)
def test_approving_with_every_tick_releases_the_run_which_then_succeeds(
    held: ReviewItem, reviewer: User, key: str
) -> None:
    response = api_as(reviewer).post(
        f"/reviews/{held.pk}/decide",
        {
            "decision": "approve",
            "checklist": all_ticks(held),
            "reason": "looks right",
            **bound(held),
        },
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["decided_by"], body["decision"]) == ("approved", "rob", "approve")
    assert body["run_status"] == "queued"
    # ship is a low-confidence step on a sensitive tool: it still stops at its own gate.
    assert run_execute(run_id=held.run_id) == "awaiting_approval"
    assert toolbox.CALLS[key] == ["read"]
    gate = ReviewItem.objects.get(run_id=held.run_id, kind="step_gate", status="open")
    response = api_as(reviewer).post(
        f"/reviews/{gate.pk}/decide",
        {"decision": "approve", "checklist": all_ticks(gate), **bound(gate)},
    )
    assert response.status_code == 200, response.json()
    assert run_execute(run_id=held.run_id) == "succeeded"
    assert toolbox.CALLS[key] == ["read", "ship"]


def test_approving_without_the_checklist_is_422_listing_what_is_missing(
    held: ReviewItem, reviewer: User
) -> None:
    response = api_as(reviewer).post(
        f"/reviews/{held.pk}/decide", {"decision": "approve", **bound(held)}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "checklist_incomplete"
    assert [f["message"] for f in body["fields"]] == held.checklist
    held.refresh_from_db()
    assert held.status == "open"


def test_a_second_decision_is_409_saying_who_decided_first(
    held: ReviewItem, reviewer: User, admin_user: User
) -> None:
    api_as(reviewer).post(f"/reviews/{held.pk}/decide", {"decision": "reject", "reason": "no"})
    late = api_as(admin_user).post(
        f"/reviews/{held.pk}/decide",
        {"decision": "approve", "checklist": all_ticks(held), **bound(held)},
    )
    assert late.status_code == 409
    assert late.json()["code"] == "already_decided" and "rob" in late.json()["detail"]
    assert Run.objects.get(pk=held.run_id).status == "cancelled"


def test_a_rejection_needs_a_reason(held: ReviewItem, reviewer: User) -> None:
    response = api_as(reviewer).post(f"/reviews/{held.pk}/decide", {"decision": "reject"})
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "reason"
    held.refresh_from_db()
    assert held.status == "open"


def test_the_submitter_may_not_approve_their_own_plan(
    reviewer: User,
    admin_user: User,
    submit: Callable[..., Run],
    plan_doc: dict,
    global_policy: Callable[..., ApprovalPolicy],
) -> None:
    global_policy("always")
    item = ReviewItem.objects.get(run=submit(plan_doc, by=admin_user))
    response = api_as(admin_user).post(
        f"/reviews/{item.pk}/decide",
        {"decision": "approve", "checklist": all_ticks(item), **bound(item)},
    )
    assert response.status_code == 403 and response.json()["code"] == "four_eyes"
    item.refresh_from_db()
    assert item.status == "open"


@pytest.mark.django_db(transaction=True)
def test_an_edit_becomes_the_next_plan_version_and_is_what_runs(
    held: ReviewItem, reviewer: User, key: str
) -> None:
    edited = {
        "goal": "ship it carefully",
        "steps": [step("read", "record", key), step("ship", "deploy", key, ("read",))],
    }
    edited["steps"][1]["params"]["label"] = "ship-edited"
    response = api_as(reviewer).post(
        f"/reviews/{held.pk}/decide",
        {
            "decision": "edit",
            "plan": edited,
            "checklist": all_ticks(held),
            "reason": "relabel",
            "approve": True,
            **bound(held),
        },
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "edited" and response.json()["result_plan_version"] == 2
    assert run_execute(run_id=held.run_id) == "succeeded"
    assert toolbox.CALLS[key] == ["read", "ship-edited"]


def test_an_edit_as_yaml_text_is_accepted(held: ReviewItem, reviewer: User, key: str) -> None:
    text = f"goal: g\nsteps:\n  - {{id: a, action: record, params: {{key: {key}, label: a}}}}\n"
    response = api_as(reviewer).post(
        f"/reviews/{held.pk}/decide",
        {"decision": "edit", "plan": text, **bound(held)},
    )
    assert response.status_code == 200, response.json()
    assert Plan.objects.get(run_id=held.run_id, version=2).document["goal"] == "g"


@pytest.mark.parametrize(
    ("plan", "code"),
    [
        ({"steps": [{"id": "a", "action": "no_such_tool"}]}, "invalid_plan"),
        ("steps: [unclosed", "invalid_input"),
        (None, "invalid_input"),
    ],
    ids=["invalid", "syntax", "missing"],
)
def test_a_bad_edit_is_422_with_its_problems_and_saves_nothing(
    held: ReviewItem, reviewer: User, plan: object, code: str
) -> None:
    audit_before = AuditEntry.objects.count()
    response = api_as(reviewer).post(
        f"/reviews/{held.pk}/decide",
        {"decision": "edit", "plan": plan, **bound(held)},
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == code and body["fields"]
    assert all(f["field"].startswith("plan") for f in body["fields"])
    held.refresh_from_db()
    assert held.status == "open"
    assert Plan.objects.filter(run_id=held.run_id).count() == 1
    assert AuditEntry.objects.count() == audit_before


def test_a_plan_with_an_approve_is_refused(held: ReviewItem, reviewer: User) -> None:
    response = api_as(reviewer).post(
        f"/reviews/{held.pk}/decide",
        {"decision": "approve", "plan": {"steps": []}, "checklist": all_ticks(held), **bound(held)},
    )
    assert response.status_code == 422 and response.json()["fields"][0]["field"] == "plan"


def test_an_escalation_is_not_approved_through_decide(held: ReviewItem, reviewer: User) -> None:
    api_as(reviewer).post(f"/reviews/{held.pk}/decide", {"decision": "reject", "reason": "x"})
    escalation = escalation_open(run_id=held.run_id, cause="evaluator_fail", reason="boom")
    response = api_as(reviewer).post(
        f"/reviews/{escalation.pk}/decide",
        {"decision": "approve", "checklist": [], **bound(escalation)},
    )
    assert response.status_code == 403 and response.json()["code"] == "not_allowed"
    escalation.refresh_from_db()
    assert escalation.status == "open"


# --------------------------------------------------------------------------- audit
def test_audit_entries_filter_per_item_and_actor_newest_first(
    held: ReviewItem, reviewer: User
) -> None:
    api = api_as(reviewer)
    api.post(f"/reviews/{held.pk}/claim")
    body = api.get("/audit", {"item": held.pk}).json()
    assert [e["action"] for e in body["items"]] == ["review.claimed", "review.opened"]
    assert body["total"] == 2 and body["items"][0]["actor"] == "rob"
    assert body["items"][0]["prev_hash"] == body["items"][1]["hash"]
    assert [e["action"] for e in api.get("/audit", {"actor": "rob"}).json()["items"]] == [
        "review.claimed"
    ]
    assert api.get("/audit", {"run": "x"}).status_code == 422


def test_the_audit_csv_is_the_same_trail_oldest_first(held: ReviewItem, reviewer: User) -> None:
    api = api_as(reviewer)
    api.post(f"/reviews/{held.pk}/claim")
    response = api.get("/audit/csv", {"item": held.pk})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    actions = [row[rows[0].index("action")] for row in rows[1:]]
    assert actions == ["review.opened", "review.claimed"]


def test_the_status_filter_offers_every_item_status() -> None:
    from typing import get_args

    from reviews.api.schemas.queue import QueueFiltersIn
    from reviews.models import ReviewStatus

    offered = set(get_args(QueueFiltersIn.model_fields["status"].annotation))
    assert offered == {*ReviewStatus.values, "all"}


# --------------------------------------------------------------------------- bound decisions
def decide(item: ReviewItem, user: User, **body: object) -> tuple[int, dict]:
    response = api_as(user).post(f"/reviews/{item.pk}/decide", body)
    return response.status_code, response.json()


def test_the_detail_gives_the_version_and_hash_a_decision_names(
    held: ReviewItem, reviewer: User
) -> None:
    body = api_as(reviewer).get(f"/reviews/{held.pk}").json()
    assert (body["plan_version"], body["plan_hash"]) == (1, plan_hash(held.plan))
    assert body["params_hash"] is None


@pytest.mark.parametrize("decision", ["approve", "edit"])
def test_approving_or_editing_without_naming_the_version_is_422(
    held: ReviewItem, reviewer: User, plan_doc: dict, decision: str
) -> None:
    plan = plan_doc if decision == "edit" else None
    status, body = decide(held, reviewer, decision=decision, plan=plan, checklist=all_ticks(held))
    assert (status, body["fields"][0]["field"]) == (422, "plan_version")
    held.refresh_from_db()
    assert held.status == "open" and held.approvals.count() == 0


def test_a_decision_about_another_version_is_409_stale_plan_and_writes_nothing(
    held: ReviewItem, reviewer: User
) -> None:
    audit_before = AuditEntry.objects.count()
    for version in (2, 7):
        status, body = decide(
            held, reviewer, decision="approve", plan_version=version, checklist=all_ticks(held)
        )
        assert (status, body["code"]) == (409, "stale_plan"), body
        assert f"plan v1, not v{version}" in body["detail"]
    status, body = decide(held, reviewer, decision="reject", plan_version=2, reason="no")
    assert (status, body["code"]) == (409, "stale_plan")
    held.refresh_from_db()
    assert held.status == "open" and held.approvals.count() == 0
    assert Run.objects.get(pk=held.run_id).status == "awaiting_approval"
    assert AuditEntry.objects.count() == audit_before


def test_a_hash_of_another_document_is_409_stale_plan(held: ReviewItem, reviewer: User) -> None:
    other = plan_hash(Plan(document={"steps": []}))
    status, body = decide(
        held,
        reviewer,
        decision="approve",
        plan_version=1,
        plan_hash=other,
        checklist=all_ticks(held),
    )
    assert (status, body["code"]) == (409, "stale_plan") and "hash differs" in body["detail"]
    assert ReviewItem.objects.get(pk=held.pk).status == "open"
    status, body = decide(
        held, reviewer, decision="approve", plan_version=1, plan_hash="xyz", checklist=[]
    )
    assert (status, body["fields"][0]["field"]) == (422, "plan_hash")


def test_an_edit_is_saved_pending_and_only_an_approval_of_it_runs_it(
    held: ReviewItem, reviewer: User, plan_doc: dict, key: str
) -> None:
    edited = {**plan_doc, "goal": "ship it to staging"}
    status, body = decide(held, reviewer, decision="edit", plan=edited, **bound(held))
    assert status == 200, body
    assert (body["status"], body["plan_version"], body["result_plan_version"]) == ("open", 2, 2)
    assert body["plan_hash"] == plan_hash(Plan.objects.get(run_id=held.run_id, version=2))
    assert body["run_status"] == "awaiting_approval" and toolbox.CALLS[key] == []
    # The same edit again is no change; an edit of v1 is stale now.
    status, body = decide(held, reviewer, decision="edit", plan=edited, **bound(held))
    assert status == 409 and "unchanged" in body["detail"]
    status, body = decide(held, reviewer, decision="edit", plan=plan_doc, plan_version=1)
    assert (status, body["code"]) == (409, "stale_plan")
    status, body = decide(
        held, reviewer, decision="approve", checklist=all_ticks(held), **bound(held)
    )
    assert status == 200 and body["status"] == "approved" and body["plan_version"] == 2
    run = Run.objects.get(pk=held.run_id)
    assert (run.status, run.current_plan.goal) == ("queued", "ship it to staging")  # type: ignore[union-attr]
    entry = AuditEntry.objects.filter(item_id=held.pk, action="review.approved").get()
    assert entry.after["plan_version"] == 2 and entry.after["plan_hash"] == body["plan_hash"]


def test_approve_goes_only_with_edit(held: ReviewItem, reviewer: User) -> None:
    status, body = decide(
        held, reviewer, decision="approve", approve=True, checklist=all_ticks(held), **bound(held)
    )
    assert (status, body["fields"][0]["field"]) == (422, "approve")
    status, body = decide(held, reviewer, decision="edit", plan={}, approve=0, **bound(held))
    assert (status, body["fields"][0]["field"]) == (422, "approve")


def test_quorum_approvals_of_an_earlier_version_no_longer_count_after_an_edit(
    held: ReviewItem, reviewer: User, admin_user: User, plan_doc: dict, tools: dict
) -> None:
    ApprovalPolicy.objects.create(tool=tools["record"], mode="never", required_approvals=2)
    ReviewItem.objects.filter(pk=held.pk).update(required_approvals=2)
    status, body = decide(
        held, reviewer, decision="approve", checklist=all_ticks(held), **bound(held)
    )
    assert (status, body["approvals"]) == (200, ["rob"])
    edited = {**plan_doc, "goal": "edited"}
    status, body = decide(held, admin_user, decision="edit", plan=edited, **bound(held))
    assert status == 200 and body["approvals"] == [] and body["plan_version"] == 2
    saved = AuditEntry.objects.get(item_id=held.pk, action="review.plan_saved")
    assert saved.after["approvals_reset"] == ["rob"] and saved.before["plan_version"] == 1
    event = TranscriptEvent.objects.get(run_id=held.run_id, kind="review.plan_saved")
    assert event_summary(event.kind, event.payload) == (
        f"review {held.pk}: plan v2 saved by {admin_user.username}, waiting for approval; "
        "1 approval of the earlier version dropped"
    )
    # One approval of v2 is not enough: rob's approval of v1 does not count.
    status, body = decide(
        held, admin_user, decision="approve", checklist=all_ticks(held), **bound(held)
    )
    assert (status, body["status"], body["approvals"]) == (200, "open", [admin_user.username])
    status, body = decide(
        held, reviewer, decision="approve", checklist=all_ticks(held), **bound(held)
    )
    assert (status, body["status"]) == (200, "approved")


@pytest.mark.django_db(transaction=True)
def test_a_step_gate_decision_names_the_params_it_approves(
    held: ReviewItem, reviewer: User, key: str
) -> None:
    status, body = decide(
        held, reviewer, decision="approve", checklist=all_ticks(held), **bound(held)
    )
    assert status == 200, body
    assert run_execute(run_id=held.run_id) == "awaiting_approval"
    gate = ReviewItem.objects.get(run_id=held.run_id, kind="step_gate", status="open")
    shown = api_as(reviewer).get(f"/reviews/{gate.pk}").json()
    assert shown["params_hash"] == content_hash({"key": key, "label": "ship"})
    names = {"plan_version": shown["plan_version"], "plan_hash": shown["plan_hash"]}
    status, body = decide(gate, reviewer, decision="approve", checklist=all_ticks(gate), **names)
    assert (status, body["fields"][0]["field"]) == (422, "params_hash")
    other = content_hash({"key": key, "label": "ship-to-production"})
    status, body = decide(
        gate,
        reviewer,
        decision="approve",
        params_hash=other,
        checklist=all_ticks(gate),
        **names,
    )
    assert (status, body["code"]) == (409, "stale_plan")
    assert toolbox.CALLS[key] == ["read"]
    status, body = decide(
        gate,
        reviewer,
        decision="approve",
        params_hash=shown["params_hash"],
        checklist=all_ticks(gate),
        **names,
    )
    assert status == 200 and body["status"] == "approved"
    assert run_execute(run_id=held.run_id) == "succeeded"
    assert toolbox.CALLS[key] == ["read", "ship"]


@pytest.mark.parametrize(
    "text",
    ["steps:\n- {id: a, action: noop, params: {n: " + "9" * 5000 + "}}", "a: " + "[" * 1500],
    ids=["huge-int", "deep"],
)
def test_an_edit_beyond_the_parsers_limits_is_422_and_saves_nothing(
    text: str, held: ReviewItem, reviewer: User
) -> None:
    response = api_as(reviewer).post(
        f"/reviews/{held.pk}/decide",
        {"decision": "edit", "plan": text, "plan_version": 1, "checklist": all_ticks(held)},
    )
    assert response.status_code == 422, response.content
    assert response.json()["fields"][0]["field"] == "plan"
    assert Plan.objects.filter(run=held.run).count() == 1

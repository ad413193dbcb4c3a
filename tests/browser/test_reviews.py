"""Reviews in Chromium: a reviewer in a second browser decides a held plan; the operator's page follows live."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages
from tests.browser.test_live import mark_page, still_same_document, submit

pytestmark = pytest.mark.browser

ORIGINAL = "hello from the original plan"
EDITED = "hello from the reviewer's edit"
PLAN = f"""goal: Tell the team, then test
steps:
  - {{id: announce, action: notify_team, params: {{message: "{ORIGINAL}"}}}}
  - {{id: check, action: run_tests, params: {{suite: unit}}, depends_on: [announce]}}
"""


@pytest.fixture
def notify_needs_approval(daphne_server: LiveServer) -> Iterator[None]:
    """An ``always`` policy on the notify_team tool: plans using it wait for a reviewer."""
    set_policy = (
        "from reviews.models import ApprovalPolicy; from runs.models import Tool; "
        "ApprovalPolicy.objects.update_or_create("
        "tool=Tool.objects.get(name='notify_team'), defaults={'mode': 'always'})"
    )
    daphne_server.manage("shell", "-c", set_policy)
    try:
        yield
    finally:
        daphne_server.manage(
            "shell",
            "-c",
            "from reviews.models import ApprovalPolicy; "
            "ApprovalPolicy.objects.filter(tool__name='notify_team').delete()",
        )


def watch_status(page: Any) -> None:
    """Record every status the run badge shows, so a short-lived one is not missed."""
    # The badge is re-rendered with the live part on status changes: watch the whole page.
    page.evaluate(
        """() => {
          window.__statuses = [];
          const seen = () => {
            const text = document.querySelector('[data-run-status]')?.textContent.trim();
            if (text && text !== window.__statuses.at(-1)) window.__statuses.push(text);
          };
          seen();
          new MutationObserver(seen)
            .observe(document.querySelector('main'), {childList: true, characterData: true, subtree: true});
        }"""
    )


def held_item(server: LiveServer, run_id: int) -> int:
    rows = server.query(
        "SELECT id FROM reviews_reviewitem WHERE run_id = ? AND status = 'open'", run_id
    )
    assert len(rows) == 1, rows
    return rows[0][0]


def operator_waits(pages: Pages, server: LiveServer) -> tuple[Any, int, int]:
    operator = pages.login("operator")
    run_id = submit(operator, PLAN, "Needs a reviewer")
    operator.wait_for_selector("[data-run-status].status-awaiting_approval")
    operator.wait_for_selector('[data-live-state="live"]')
    item_id = held_item(server, run_id)
    assert operator.locator(f'[data-open-reviews] [data-review-item="{item_id}"]').count() == 1
    mark_page(operator)
    watch_status(operator)
    return operator, run_id, item_id


def tick_checklist(page: Any) -> None:
    for box in page.locator('[data-decision-form] input[name="checklist"]').all():
        box.check()


def test_a_reviewer_approves_in_a_second_browser_and_the_operator_page_follows_to_success(
    pages: Pages, daphne_server: LiveServer, notify_needs_approval: None
) -> None:
    reviewer = pages.login("reviewer")
    reviewer.goto("/reviews/")
    reviewer.wait_for_selector('[data-live-state="live"]')
    mark_page(reviewer)

    operator, run_id, item_id = operator_waits(pages, daphne_server)
    pages.screenshot(operator, "awaiting-approval")

    # The reviewer's queue shows the new item without a reload.
    row = f'#reviews-table tr[data-item-id="{item_id}"]'
    reviewer.wait_for_selector(row)
    assert "Needs a reviewer" in reviewer.inner_text(row)
    assert still_same_document(reviewer), "the queue reloaded instead of updating live"
    pages.screenshot(reviewer, "queue")

    reviewer.click(f"{row} a[href='/reviews/{item_id}/']")
    reviewer.wait_for_url(f"**/reviews/{item_id}/")
    tick_checklist(reviewer)
    reviewer.fill("#reason", "fine by me")
    reviewer.click('[data-decision-form] button.primary:has-text("Approve")')
    reviewer.wait_for_selector(".message.success")

    operator.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    statuses = operator.evaluate("window.__statuses")
    assert "executing" in statuses and statuses[-1] == "succeeded", statuses
    assert operator.locator("[data-open-reviews]").count() == 0
    transcript = operator.inner_text("#transcript")
    assert f"review {item_id} (plan approval) approved by reviewer, plan v1: fine by me" in (
        transcript
    )
    assert still_same_document(operator), "the run page reloaded instead of updating live"
    assert daphne_server.query("SELECT status FROM runs_run WHERE id = ?", run_id) == [
        ("succeeded",)
    ]
    pages.screenshot(operator, "approved-succeeded")


def approve_in_browser(pages: Pages, item_id: int) -> None:
    reviewer = pages.login("reviewer")
    reviewer.goto(f"/reviews/{item_id}/")
    tick_checklist(reviewer)
    reviewer.fill("#reason", "fine by me")
    reviewer.click('[data-decision-form] button.primary:has-text("Approve")')
    reviewer.wait_for_selector(".message.success")


def wait_until(page: Any, done: Any, what: str) -> None:
    """Let the page's handlers run until ``done()`` holds (15 s at most)."""
    for _ in range(300):
        if done():
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_re_render_begun_before_the_run_finished_does_not_set_its_badge_back(
    pages: Pages, daphne_server: LiveServer, notify_needs_approval: None
) -> None:
    operator, run_id, item_id = operator_waits(pages, daphne_server)
    # Hold each re-render of the live part: rendered when asked for, delivered when the test says.
    held: list[tuple[Any, Any]] = []
    operator.route(f"**/runs/{run_id}/live/", lambda route: held.append((route, route.fetch())))
    approve_in_browser(pages, item_id)
    operator.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    assert len(held) == 1, "one re-render in flight, the others wait for it"

    route, rendered_before_the_end = held[0]
    route.fulfill(response=rendered_before_the_end)
    wait_until(operator, lambda: len(held) == 2, "the re-render that follows the stale one")
    # The stale part's steps and badge are brought up to the events already applied.
    assert operator.inner_text("[data-run-status]") == "succeeded"
    assert operator.locator("[data-run-status].status-succeeded").count() == 1
    assert operator.locator('tr[data-step-id][data-phase="main"]').evaluate_all(
        "rows => rows.map(r => r.dataset.status)"
    ) == ["succeeded", "succeeded"]

    route, rendered_after_the_end = held[1]
    route.fulfill(response=rendered_after_the_end)
    operator.unroute(f"**/runs/{run_id}/live/")
    operator.wait_for_selector('[data-live-state="finished"]', timeout=10_000)
    assert operator.evaluate("window.__statuses")[-1] == "succeeded"
    assert still_same_document(operator), "the run page reloaded instead of updating live"


def test_the_approval_trap_approve_with_unsaved_edits_is_refused_then_the_saved_edit_runs(
    pages: Pages, daphne_server: LiveServer, notify_needs_approval: None
) -> None:
    operator, run_id, item_id = operator_waits(pages, daphne_server)
    reviewer = pages.login("reviewer")
    reviewer.goto(f"/reviews/{item_id}/")
    warning = reviewer.locator("[data-unsaved-warning]")
    approve = reviewer.locator("[data-approve-button]")
    assert warning.is_hidden() and approve.inner_text() == "Approve v1"
    plan_text = reviewer.input_value("#plan")
    assert ORIGINAL in plan_text

    # The trap: edit the plan, then press Approve without saving. The refusal is a 409 page.
    pages.allowed.append("status of 409 (Conflict)")
    reviewer.fill("#plan", plan_text.replace(ORIGINAL, EDITED))
    assert warning.is_visible() and "save your edits first" in approve.inner_text()
    tick_checklist(reviewer)
    approve.click()
    # Refused next to the editor it is about.
    reviewer.wait_for_selector('[data-field-error="plan"]')
    assert "unsaved changes to plan v1" in reviewer.inner_text('[data-field-error="plan"]')
    pages.screenshot(reviewer, "unsaved-refused")
    # Nothing was approved, the original never ran, and the edit is still in the editor.
    assert EDITED in reviewer.input_value("#plan") and warning.is_visible()
    assert daphne_server.query("SELECT status FROM runs_run WHERE id = ?", run_id) == [
        ("awaiting_approval",)
    ]
    assert daphne_server.query(
        "SELECT COUNT(*) FROM runs_step WHERE run_id = ? AND status != 'pending'", run_id
    ) == [(0,)]
    assert daphne_server.query(
        "SELECT COUNT(*) FROM reviews_approval WHERE item_id = ?", item_id
    ) == [(0,)]

    # Save: a new version, which waits for approval; the run stays where it was.
    reviewer.click('[data-decision-form] button:has-text("Save edited plan")')
    reviewer.wait_for_selector(".message.success")
    assert "Plan v2 saved; it now waits for approval" in reviewer.inner_text(".message.success")
    assert warning.is_hidden() and approve.inner_text() == "Approve v2"
    assert daphne_server.query("SELECT status FROM runs_run WHERE id = ?", run_id) == [
        ("awaiting_approval",)
    ]
    pages.screenshot(reviewer, "saved-pending")

    # Approve: the edited version runs.
    tick_checklist(reviewer)
    reviewer.fill("#reason", "better wording")
    approve.click()
    reviewer.wait_for_selector(".message.success")
    assert f"Review {item_id} approved." in reviewer.inner_text(".message.success")
    operator.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    operator.wait_for_selector('tr[data-step-key="announce"][data-status="succeeded"]')
    # The live part was re-rendered for plan v2: its steps carry the edited parameters.
    assert "plan v2" in operator.inner_text("#run-live h2")
    assert EDITED in operator.text_content('tr[data-step-key="announce"]')
    assert ORIGINAL not in operator.text_content("#run-live table")
    assert still_same_document(operator), "the run page reloaded instead of updating live"
    pages.screenshot(operator, "edited-succeeded")

    # The database agrees: v2's steps ran with the edit, v1's never ran.
    rows = daphne_server.query(
        "SELECT p.version, s.key, s.status, s.params FROM runs_step s "
        "JOIN runs_plan p ON p.id = s.plan_id WHERE s.run_id = ? AND s.phase = 'main' "
        "ORDER BY p.version, s.position",
        run_id,
    )
    by_version = {(v, k): (st, json.loads(params)) for v, k, st, params in rows}
    # notify_team's channel was left out: the stored version has the tool's default.
    assert by_version[(2, "announce")] == ("succeeded", {"message": EDITED, "channel": "#deploys"})
    assert by_version[(2, "check")][0] == "succeeded"
    assert {st for (v, _), (st, _) in by_version.items() if v == 1} == {"pending"}


def test_the_audit_page_shows_an_aborted_escalation_reviewer_choices_and_a_verified_chain(
    pages: Pages, daphne_server: LiveServer
) -> None:
    operator = pages.login("operator")
    operator.goto("/runs/new/")
    operator.fill("#id_task-title", "Water the office plants every morning")
    operator.select_option("#id_task-planner", "playbook")
    operator.click("form[data-task-form] button:has-text('Plan and run')")
    operator.wait_for_url("**/runs/*/")
    run_id = int(operator.url.rstrip("/").rsplit("/", 1)[1])
    operator.wait_for_selector("[data-run-status].status-escalated", timeout=30_000)
    item_id = held_item(daphne_server, run_id)

    reviewer = pages.login("reviewer")
    reviewer.goto(f"/reviews/{item_id}/")
    # No playbook matched: retrying would fail the same way, so only these two are offered.
    offered = reviewer.eval_on_selector_all(
        "[data-decision-form] button[data-action]", "bs => bs.map(b => b.dataset.action)"
    )
    assert offered == ["write_plan", "abort"]
    reviewer.fill("#reason", "no playbook for plants")
    reviewer.click('[data-decision-form] button[data-action="abort"]')
    reviewer.wait_for_selector(".message.success")

    reviewer.goto("/reviews/audit/")
    reviewer.select_option("select[name=actor]", "reviewer")
    reviewer.fill("input[name=item]", str(item_id))
    reviewer.click('form.filters button:has-text("Filter")')
    reviewer.wait_for_url(f"**/reviews/audit/?*item={item_id}*")
    assert reviewer.eval_on_selector("select[name=actor]", "s => s.value") == "reviewer"
    choices = reviewer.eval_on_selector_all(
        "select[name=actor] option", "os => os.map(o => o.value)"
    )
    actors = daphne_server.query(
        "SELECT DISTINCT actor_name FROM reviews_auditentry ORDER BY actor_name"
    )
    assert choices == ["", *(name for (name,) in actors)] and "reviewer" in choices
    outcomes = reviewer.eval_on_selector_all(
        "table.audit tbody [data-outcome]", "cs => cs.map(c => c.textContent.trim())"
    )
    assert "abort" in outcomes and "rejected" not in outcomes, outcomes
    ((count,),) = daphne_server.query("SELECT COUNT(*) FROM reviews_auditentry")
    assert reviewer.inner_text("[data-audit-chain]") == f"chain verified: {count} entries"
    pages.screenshot(reviewer, "audit")

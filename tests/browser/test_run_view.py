"""The run page in Chromium: honest outcomes, live until the run is closed, the timeline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages
from tests.browser.test_live import (
    BLOCKER,
    mark_page,
    release_worker,
    sleepy_plan,
    still_same_document,
    submit,
)
from tests.browser.test_reviews import held_item, tick_checklist, watch_status

pytestmark = pytest.mark.browser

WRITTEN = """goal: Polish the doorknobs by hand
steps:
  - {id: water, action: sleep, params: {ms: 300}}
  - {id: log, action: sleep, params: {ms: 50}, depends_on: [water]}
"""


def badge_colours(page: Any) -> dict[str, str]:
    """The computed background of a badge of each run status (rendered off-screen)."""
    return page.evaluate(
        """statuses => Object.fromEntries(statuses.map(s => {
          const b = document.createElement('span');
          b.className = `badge status-${s}`;
          document.body.append(b);
          const colour = getComputedStyle(b).backgroundColor;
          b.remove();
          return [s, colour];
        }))""",
        ["succeeded", "failed", "rolled_back", "cancelled", "escalated", "awaiting_approval"],
    )


def test_a_rolled_back_run_shows_its_outcomes_not_a_green_bar_on_the_list_and_its_page(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/?demo=deploy-broken")
    page.wait_for_selector('[data-plan-check="valid"]')
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/runs/*/")
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    mark_page(page)
    page.wait_for_selector("[data-run-status].status-rolled_back", timeout=30_000)
    bar = ".progress [data-outcome-bar]"
    page.wait_for_function(
        f"() => document.querySelector('{bar} .seg-rolled_back') !== null", timeout=10_000
    )
    live_label = page.get_attribute(bar, "aria-label")
    pages.screenshot(page, "rolled-back")
    assert still_same_document(page)
    rows = daphne_server.query(
        "SELECT s.status, COUNT(*) FROM runs_step s JOIN runs_run r ON r.current_plan_id = s.plan_id "
        "WHERE r.id = ? AND s.phase = 'main' GROUP BY s.status",
        run_id,
    )
    truth = dict(rows)
    assert f"{truth['rolled_back']} rolled back" in (live_label or "")
    assert f"{truth['succeeded']} succeeded" in (live_label or "")
    page.reload()
    assert page.get_attribute(bar, "aria-label") == live_label  # live and reloaded agree

    page.goto("/")
    row = f'#runs-table tr[data-run-id="{run_id}"]'
    assert page.get_attribute(f"{row} [data-outcome-bar]", "aria-label") == live_label
    assert page.inner_text(f"{row} td.steps") == page.inner_text(f"{row} td.steps").strip()
    colours = badge_colours(page)
    assert len(set(colours.values())) == len(colours), colours  # every outcome its own colour

    api = page.request.get(f"/api/runs/{run_id}").json()
    assert api["step_outcomes"] == {
        k: truth[k]
        for k in ("succeeded", "failed", "rolled_back", "cancelled", "skipped")
        if truth.get(k)
    }
    assert f"{api['steps_finished']}/{api['steps_total']}" == page.inner_text(f"{row} td.steps")


def test_an_escalated_run_page_keeps_listening_and_follows_the_reviewers_resume_live(
    pages: Pages, daphne_server: LiveServer
) -> None:
    operator = pages.login("operator")
    blocker = submit(operator, BLOCKER, "Busy worker")  # the next run waits while the page opens
    operator.goto("/runs/new/")
    operator.fill("#id_task-title", "Polish the brass doorknobs on the third floor")
    operator.select_option("#id_task-planner", "playbook")
    operator.click("form[data-task-form] button:has-text('Plan and run')")
    operator.wait_for_url("**/runs/*/")
    run_id = int(operator.url.rstrip("/").rsplit("/", 1)[1])
    mark_page(operator)
    watch_status(operator)
    assert operator.locator("[data-open-reviews]").count() == 0
    release_worker(daphne_server, blocker)
    operator.wait_for_selector("[data-run-status].status-escalated", timeout=30_000)
    # The review item that opened with the escalation appears, and the page stays live.
    operator.wait_for_selector("[data-open-reviews] [data-review-item]", timeout=10_000)
    operator.wait_for_selector("[data-waiting-reviewer]")
    item_id = held_item(daphne_server, run_id)
    assert operator.get_attribute("[data-live-state]", "data-live-state") == "live"
    assert operator.locator("[data-retry-form]").count() == 0
    pages.screenshot(operator, "escalated-live")

    reviewer = pages.login("reviewer")
    reviewer.goto(f"/reviews/{item_id}/")
    reviewer.fill("#plan", WRITTEN)
    tick_checklist(reviewer)
    reviewer.fill("#reason", "doorknobs need polish")
    reviewer.click('[data-decision-form] button[data-action="write_plan"]')
    reviewer.wait_for_selector(".message")
    assert "recorded" in reviewer.inner_text(".messages"), reviewer.inner_text(".messages")

    operator.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    operator.wait_for_selector('[data-live-state="finished"]', timeout=10_000)
    statuses = operator.evaluate("window.__statuses")
    assert "escalated" in statuses and statuses[-1] == "succeeded", statuses
    # Every fact arrived without a reload: finish time, duration, no open review, new steps.
    assert still_same_document(operator), "the run page reloaded instead of updating live"
    assert operator.locator("[data-open-reviews]").count() == 0
    finished = operator.inner_text("[data-run-finished]")
    assert len(finished) == len("2026-01-01 00:00:00.000"), finished
    assert operator.inner_text("[data-run-duration]").endswith(" s")
    assert operator.locator('tr[data-step-key="water"][data-status="succeeded"]').count() == 1
    assert operator.locator('[data-timeline] .tl-row[data-tl-step="water"] .tl-bar').count() == 1
    live_facts = operator.inner_text("[data-run-facts]")
    pages.screenshot(operator, "resumed-succeeded")
    operator.reload()
    assert operator.inner_text("[data-run-facts]") == live_facts


def test_the_timeline_draws_each_step_with_millisecond_times_and_a_running_clock(
    pages: Pages, daphne_server: LiveServer
) -> None:
    plan = """goal: Two at once, then one
steps:
  - {id: left, action: sleep, params: {ms: 1500}}
  - {id: right, action: sleep, params: {ms: 300}}
  - {id: after, action: sleep, params: {ms: 100}, depends_on: [left, right]}
"""
    page = pages.login("operator")
    submit(page, plan, "Timeline")
    page.wait_for_selector('tr[data-step-key="left"][data-status="running"]', timeout=20_000)
    # A running step shows its elapsed time, ticking, in its row and its lane.
    took = 'tr[data-step-key="left"] [data-step-took]'
    page.wait_for_function(f"() => document.querySelector('{took}').textContent.endsWith('…')")
    first = page.inner_text(took)
    page.wait_for_function(
        f"t => document.querySelector('{took}').textContent !== t", arg=first, timeout=5_000
    )
    pages.screenshot(page, "running")
    page.wait_for_selector("[data-run-status].status-succeeded", timeout=20_000)
    lanes = page.eval_on_selector_all(
        "[data-timeline] .tl-row",
        "rs => rs.map(r => [r.dataset.tlStep, r.querySelector('.tl-time').textContent])",
    )
    assert [k for k, _ in lanes] == ["left", "right", "after"]
    assert all(t.endswith(" s") and "." in t for _, t in lanes), lanes
    # Parallel steps start together; the dependent one starts after both.
    lefts = page.eval_on_selector_all(
        "[data-timeline] .tl-bar", "bs => bs.map(b => parseFloat(b.style.left))"
    )
    assert lefts[2] > max(lefts[0], lefts[1])
    started = page.inner_text('tr[data-step-key="after"] [data-step-started]')
    assert len(started) == len("00:00:00.000"), started
    pages.screenshot(page, "timeline")


def test_a_steps_own_page_opens_from_the_run_page_with_its_params_and_events(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    run_id = submit(page, sleepy_plan(2, 20), "Step detail")
    page.wait_for_selector("[data-run-status].status-succeeded", timeout=20_000)
    page.click('tr[data-step-key="s1"] a[data-step-link]')
    page.wait_for_url(f"**/runs/{run_id}/steps/*/")
    assert '"ms": 20' in page.inner_text("[data-step-params]")
    assert page.inner_text("[data-step-status]") == "succeeded"
    summaries = page.eval_on_selector_all(
        "#transcript tbody tr", "rs => rs.map(r => r.cells[4].textContent)"
    )
    assert summaries == ["s1 pending → running", "s1 running → succeeded"], summaries
    pages.screenshot(page, "step")

"""A clarifying question in Chromium: the playbook planner asks, the operator answers on the run page."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Pages

pytestmark = pytest.mark.browser


def test_the_planner_asks_for_the_version_and_the_answer_from_the_page_is_used(
    pages: Pages,
) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/")
    page.fill("#id_task-title", "Release to staging, smoke test it, then release it to production")
    page.select_option("#id_task-planner", "playbook")
    page.select_option("#id_task-confirm_plan", "never")  # deploys run without a look here
    page.click("form[data-task-form] button:has-text('Plan and run')")
    page.wait_for_url("**/runs/*/")
    page.wait_for_selector("[data-run-status].status-awaiting_input", timeout=30_000)
    page.reload()

    # The stored plan's version (the demo playbook's 2.4.0, or v2.4.0 of an earlier run).
    assert "2.4.0'" in page.inner_text("[data-question-text]")
    pages.screenshot(page, "question")
    page.fill("[data-answer-text]", "v2.5.1")
    page.click("[data-answer-submit]")
    page.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    page.reload()

    transcript = page.inner_text("body")
    assert "operator answered: v2.5.1" in transcript
    assert page.query_selector("[data-answer-form]") is None

"""A task for the playbook planner in Chromium: the run page says which parameters came from the task."""

from __future__ import annotations

import pytest

from tests.browser.conftest import Pages

pytestmark = pytest.mark.browser

RELEASE = "Release v2.4.0 to staging, smoke test it, then release it to production"


def test_a_playbook_run_shows_the_parameters_it_took_from_the_task_and_how_they_changed(
    pages: Pages,
) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/")
    page.fill("#id_task-title", RELEASE)
    page.select_option("#id_task-planner", "playbook")
    page.select_option("#id_task-confirm_plan", "never")  # deploys run without a look here
    page.click("form[data-task-form] button:has-text('Plan and run')")
    page.wait_for_url("**/runs/*/")
    page.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    page.reload()

    rows = page.eval_on_selector_all(
        "[data-substitutions] tbody tr",
        "rs => rs.map(r => Array.from(r.cells, c => c.textContent.trim()))",
    )
    by_parameter = {row[0]: row for row in rows}
    assert {"deploy_staging.version", "deploy_production.version", "rollback-1.version"} <= set(
        by_parameter
    )
    _, in_task, change = by_parameter["deploy_staging.version"]
    assert in_task == "v2.4.0"
    assert change.startswith("2.4.0 → v2.4.0")
    assert "the stored plan's 2.4.0 replaced by the task's v2.4.0" in change
    assert "Parameters from the task" in page.inner_text("[data-llm-usage]")
    pages.screenshot(page, "substitutions")

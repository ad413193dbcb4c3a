"""Plan, then confirm, and the new-run page's options, in Chromium against a live Daphne."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Pages
from tests.browser.test_screens import violations

pytestmark = pytest.mark.browser

RELEASE = "Release v2.6.0 to staging, smoke test it, then release it to production"


def test_a_plan_that_deploys_is_shown_with_its_graph_and_runs_once_confirmed(
    pages: Pages,
) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/")
    page.fill("#id_task-title", RELEASE)
    page.select_option("#id_task-planner", "playbook")
    page.click("form[data-task-form] button:has-text('Plan and run')")
    page.wait_for_url("**/runs/*/")

    # The plan arrives live: the confirmation, the graph and the forecast, and nothing ran.
    page.wait_for_selector("[data-confirmation]", timeout=30_000)
    assert "status-awaiting_approval" in page.get_attribute("[data-run-status]", "class")
    assert "sensitive tool" in page.inner_text("[data-confirmation-why]")
    page.wait_for_selector("figure.graph svg")
    page.wait_for_selector("[data-forecast]", timeout=10_000)
    assert page.query_selector("[data-waiting-confirmation]") is not None
    assert "deploy" in page.input_value("[data-confirm-plan]")
    assert violations(page) == []
    pages.screenshot(page, "confirm")

    page.fill("[data-confirm-reason]", "versions checked")
    page.click("[data-confirm]")
    page.wait_for_url("**/runs/*/")
    page.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    assert page.query_selector("[data-confirmation]") is None
    assert "confirmed" in page.inner_text("body")


def test_a_discarded_plan_ends_the_run_cancelled(pages: Pages) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/")
    page.fill("#id_task-title", RELEASE.replace("v2.6.0", "v2.6.1"))
    page.select_option("#id_task-planner", "playbook")
    page.select_option("#id_task-confirm_plan", "always")
    page.click("form[data-task-form] button:has-text('Plan and run')")
    page.wait_for_selector("[data-confirmation]", timeout=30_000)
    page.click("[data-discard]")
    page.wait_for_selector("[data-run-status].status-cancelled", timeout=10_000)
    assert "discarded by operator" in page.inner_text("[data-stop-reason]")


def _visible_labels(page: Any, form: str) -> list[str]:
    return page.eval_on_selector_all(
        f"{form} label",
        "ls => ls.filter(l => l.offsetParent !== null).map(l => l.textContent.trim())",
    )


def test_the_new_run_page_shows_each_option_once_and_only_for_the_planners_that_take_it(
    pages: Pages,
) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/")
    page.select_option("#id_task-planner", "playbook")
    for form in ("form[action='/runs/new/']", "form[data-task-form]"):
        labels = _visible_labels(page, form)
        assert len(labels) == len(set(labels)), labels
    assert not page.is_visible("#id_task-model")
    assert not page.is_visible("#id_task-temperature")
    assert page.is_visible("#id_task-retain_days") and page.is_visible("#id_retain_days")

    page.select_option("#id_task-planner", "compatible")  # a model provider: its options appear
    assert page.is_visible("#id_task-model") and page.is_visible("#id_task-temperature")
    labels = _visible_labels(page, "form[data-task-form]")
    assert len(labels) == len(set(labels)), labels
    assert violations(page) == []


def test_a_provider_without_its_key_says_what_to_set_and_is_refused(pages: Pages) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/")
    label = page.inner_text("#id_task-planner option[value='openai']")
    assert label.endswith("(unavailable)")
    page.select_option("#id_task-planner", "openai")
    notice = page.inner_text("[data-unavailable-planner='openai']")
    assert "set OPENAI_API_KEY" in notice
    page.fill("#id_task-title", "Anything at all")
    pages.allowed.append("status of 422")  # the refusal itself, as the browser logs it
    with page.expect_response("**/runs/new/task/") as answer:
        page.click("form[data-task-form] button:has-text('Plan and run')")
    assert answer.value.status == 422
    assert "set OPENAI_API_KEY" in page.inner_text("[data-field-errors='planner']")

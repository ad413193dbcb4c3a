"""Pages in Chromium: badges that stay on one line, inputs styled alike, progress counted alike."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages

pytestmark = pytest.mark.browser

# What makes an input look like the others (plannerweb.css styles text inputs as one rule).
INPUT_STYLE = """e => {
  const s = getComputedStyle(e);
  return [s.borderTopWidth, s.borderTopStyle, s.borderTopColor, s.borderRadius,
          s.paddingTop, s.paddingLeft, s.backgroundColor, s.fontSize];
}"""


def height(page: Any, selector: str) -> float:
    return page.eval_on_selector(selector, "e => e.getBoundingClientRect().height")


def test_a_tools_retry_badge_stays_on_one_line_in_a_narrow_window(pages: Pages) -> None:
    page = pages.login("operator")
    page.set_viewport_size({"width": 640, "height": 900})
    page.goto("/tools/")
    badge = "td.flags .flag:has-text('idempotent · 2 retries')"
    one_word = "td.flags .flag.ok"
    assert page.locator(badge).count() > 0
    assert height(page, badge) == height(page, one_word)


def test_the_token_name_input_is_styled_like_the_other_inputs(pages: Pages) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/")
    other = page.eval_on_selector("form.stack input[name=title]", INPUT_STYLE)
    page.goto("/tokens/")
    assert page.eval_on_selector("#token-name", INPUT_STYLE) == other


def test_the_list_and_the_run_page_count_a_rolled_back_runs_finished_steps_alike(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/?demo=deploy-broken")
    page.wait_for_selector('[data-plan-check="valid"]')
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/runs/*/")
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.wait_for_selector("[data-run-status].status-rolled_back", timeout=30_000)
    page.reload()
    on_page = page.inner_text("[data-progress]")
    progress = page.text_content(".progress[title='finished steps / steps']") or ""
    assert " ".join(progress.split()) == f"{on_page} steps finished"
    page.goto("/")
    in_list = page.inner_text(f'#runs-table tr[data-run-id="{run_id}"] td.num')
    assert in_list == on_page == "6/6"
    statuses = daphne_server.query(
        "SELECT DISTINCT status FROM runs_step WHERE run_id = ? AND phase = 'main'", run_id
    )
    # The tests only read: they stay succeeded; the rest is undone, failed or never ran.
    assert {status for (status,) in statuses} == {"succeeded", "rolled_back", "failed", "skipped"}

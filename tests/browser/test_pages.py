"""The tools and tokens pages in Chromium: badges that stay on one line, inputs styled alike."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import Pages

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

"""Every page on every screen: no serious or critical axe-core violation, light and dark,
and no sideways scrolling of the page at 390 px (wide tables scroll inside themselves)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages
from tests.browser.test_live import sleepy_plan, submit
from tests.browser.test_reviews import held_item

pytestmark = pytest.mark.browser

AXE = (Path(__file__).parent / "assets" / "axe.min.js").read_text()
PHONE = {"width": 390, "height": 844}

RUN_AXE = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations
    .filter(v => v.impact === 'serious' || v.impact === 'critical')
    .map(v => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`);
}"""


def violations(page: Any) -> list[str]:
    page.add_script_tag(content=AXE)
    return page.evaluate(RUN_AXE)


def sideways(page: Any) -> int:
    """How far the document scrolls sideways (0: it fits the window)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


_URLS: dict[int, dict[str, str]] = {}


@pytest.fixture
def urls(pages: Pages, daphne_server: LiveServer) -> dict[str, str]:
    """One of each page: a finished run, an escalated one and its review item (made once)."""
    if id(daphne_server) not in _URLS:
        _URLS[id(daphne_server)] = _make_urls(pages, daphne_server)
    return _URLS[id(daphne_server)]


def _make_urls(pages: Pages, daphne_server: LiveServer) -> dict[str, str]:
    operator = pages.login("operator")
    run_id = submit(operator, sleepy_plan(3, 10), "Something to look at on a phone")
    operator.wait_for_selector("[data-run-status].status-succeeded", timeout=20_000)
    operator.goto("/runs/new/")
    operator.fill("#id_task-title", "Tune the grand piano in the lobby")
    operator.select_option("#id_task-planner", "playbook")
    operator.click("form[data-task-form] button:has-text('Plan and run')")
    operator.wait_for_url("**/runs/*/")
    escalated = int(operator.url.rstrip("/").rsplit("/", 1)[1])
    operator.wait_for_selector("[data-run-status].status-escalated", timeout=30_000)
    item_id = held_item(daphne_server, escalated)
    ((step_id,),) = daphne_server.query(
        "SELECT id FROM runs_step WHERE run_id = ? AND key = 's0'", run_id
    )
    return {
        "list": "/",
        "new": "/runs/new/",
        "new-demo": "/runs/new/?demo=deploy",
        "run": f"/runs/{run_id}/",
        "run-escalated": f"/runs/{escalated}/",
        "transcript": f"/runs/{run_id}/transcript/",
        "step": f"/runs/{run_id}/steps/{step_id}/",
        "tools": "/tools/",
        "tokens": "/tokens/",
        "queue": "/reviews/?status=all",
        "item": f"/reviews/{item_id}/",
        "audit": "/reviews/audit/",
    }


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_has_no_serious_accessibility_violation_and_fits_a_phone(
    pages: Pages, urls: dict[str, str], scheme: str
) -> None:
    reviewer = pages.login("reviewer")  # reviewers see the review pages too
    operator = pages.login("operator")
    found: dict[str, list[str]] = {}
    too_wide: dict[str, int] = {}
    for name, url in urls.items():
        page = reviewer if name in ("queue", "item", "audit") else operator
        page.emulate_media(color_scheme=scheme)
        page.set_viewport_size(PHONE if scheme == "dark" else {"width": 1280, "height": 900})
        assert page.goto(url).status == 200, name
        page.wait_for_load_state("networkidle")
        if problems := violations(page):
            found[f"{name} {scheme}"] = problems
        if scheme == "dark" and (extra := sideways(page)):
            too_wide[name] = extra
        if name in ("run", "item", "list"):
            pages.screenshot(page, f"{name}-{scheme}")
    assert found == {}, "\n".join(f"{k}: {v}" for k, v in found.items())
    assert too_wide == {}, f"pages scroll sideways at 390 px by (px): {too_wide}"


def test_the_login_page_and_a_skip_link_work_from_the_keyboard(pages: Pages) -> None:
    page = pages.login("operator")
    page.goto("/")
    page.keyboard.press("Tab")
    focused = page.evaluate("() => document.activeElement.textContent.trim()")
    assert focused == "Skip to content"
    # The focus ring is drawn (an outline of some width), not left to chance.
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    page.keyboard.press("Enter")
    assert page.evaluate("() => location.hash") == "#main"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_403_page_names_the_missing_role_with_no_accessibility_violation(
    pages: Pages, scheme: str
) -> None:
    reviewer = pages.login("reviewer")
    pages.allowed.append("the server responded with a status of 403")
    reviewer.emulate_media(color_scheme=scheme)
    assert reviewer.goto("/runs/new/").status == 403
    assert "needs the operator role" in " ".join(reviewer.inner_text("main").split())
    assert violations(reviewer) == []

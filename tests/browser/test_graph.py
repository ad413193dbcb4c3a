"""The plan graph in Chromium: labels inside their boxes, rollback steps, pan and zoom, 300 steps."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages
from tests.browser.test_live import submit
from tests.browser.test_screens import PHONE, sideways, violations

pytestmark = pytest.mark.browser

LONG_NAMES = """goal: Names longer than a box
steps:
  - {id: apply_the_billing_service_configuration_to_every_region, action: sleep, params: {ms: 1}}
  - id: WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW
    action: sleep
    params: {ms: 1}
    depends_on: [apply_the_billing_service_configuration_to_every_region]
  - {id: ok, action: sleep, params: {ms: 1}, depends_on: [WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW]}
"""

# Each label line's box against its node's box, in screen pixels (whatever the zoom).
LABELS_OUTSIDE = """() => [...document.querySelectorAll('figure.graph g.node')].flatMap(node => {
  const box = node.querySelector('rect').getBoundingClientRect();
  return [...node.querySelectorAll('text')].map(t => [t.textContent, t.getBoundingClientRect()])
    .filter(([, r]) => r.left < box.left - 0.5 || r.right > box.right + 0.5
                    || r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)
    .map(([text]) => text);
})"""


def big_plan(n: int) -> str:
    lines = ["goal: Three hundred steps", "steps:"]
    for i in range(n):
        deps = [] if i < 10 else [f"step_{i - 10}", f"step_{i - 9 + i % 7}"]
        lines.append(f"  - {{id: step_{i}, action: sleep, params: {{ms: 1}}, depends_on: {deps}}}")
    return "\n".join(lines) + "\n"


def until(page: Any, script: str, seconds: float = 30) -> None:
    """Poll ``script`` until it is true: a page busy with a 300-step run starves Playwright's
    own selector polling, while an evaluate gets its turn."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(script):
        assert time.monotonic() < deadline, f"still false after {seconds} s: {script}"
        time.sleep(0.2)


def view_box(page: Any) -> list[float]:
    return [float(v) for v in page.get_attribute("figure.graph svg", "viewBox").split()]


def test_long_step_names_stay_inside_their_boxes_and_keep_their_full_name(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    submit(page, LONG_NAMES, "Long names")
    page.wait_for_selector("figure.graph[data-graph-ready]")
    assert page.locator("figure.graph g.node").count() == 3
    assert page.evaluate(LABELS_OUTSIDE) == []
    titles = page.eval_on_selector_all(
        "figure.graph g.node title", "ts => ts.map(t => t.textContent)"
    )
    assert any(t.startswith("WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW (sleep") for t in titles)
    shown = page.eval_on_selector_all(
        "figure.graph g.node .label", "ls => ls.map(l => l.textContent)"
    )
    assert any(s.endswith("…") for s in shown)  # cut, the title keeps the rest
    # Zoomed in, the labels still sit inside their boxes.
    page.click("[data-graph-zoom=in]")
    assert page.evaluate(LABELS_OUTSIDE) == []
    pages.screenshot(page, "long-names")


def test_rollback_and_undo_steps_are_drawn_linked_to_what_they_undo_and_coloured_live(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    page.goto("/runs/new/?demo=deploy-broken")
    page.wait_for_selector('[data-plan-check="valid"]')
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/runs/*/")
    rollback = page.locator('figure.graph g.node[data-phase="rollback"]')
    assert rollback.count() == 3  # two step undos and the plan-level restore
    edges = page.eval_on_selector_all(
        "figure.graph path.edge.undo", "es => es.map(e => e.dataset.edge.split('→')[1])"
    )
    assert sorted(edges) == ["deploy_production", "deploy_staging"]
    page.wait_for_selector("[data-run-status].status-rolled_back", timeout=30_000)
    # The websocket coloured them: staging's undo ran, production's was skipped.
    page.wait_for_selector(
        'figure.graph g.node[data-phase="rollback"].status-succeeded', timeout=10_000
    )
    staging = page.locator("figure.graph g.node", has_text="deploy_staging").first
    assert "status-rolled_back" in (staging.get_attribute("class") or "")
    # In the drawing's own coordinates (the live re-render may be settling): the lane is below.
    tops = page.eval_on_selector_all(
        "figure.graph g.node",
        "gs => gs.map(g => [g.dataset.phase || 'main', g.transform.baseVal.consolidate().matrix.f,"
        " g.querySelector('rect').height.baseVal.value])",
    )
    main_bottom = max(y + h for phase, y, h in tops if phase == "main")
    assert min(y for phase, y, _ in tops if phase == "rollback") > main_bottom
    assert violations(page) == []
    pages.screenshot(page, "rollback")


def test_zoom_and_pan_change_the_view_by_buttons_wheel_drag_and_keyboard(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    submit(page, big_plan(40), "Forty steps")
    page.wait_for_selector("figure.graph[data-graph-ready]")
    start = view_box(page)
    assert start[:2] == [0, 0]

    page.click("[data-graph-zoom=in]")
    zoomed = view_box(page)
    assert zoomed[2] < start[2] and zoomed[3] < start[3]
    assert page.inner_text("[data-graph-readout]") == "125%"

    page.click("[data-graph-zoom=reset]")
    assert view_box(page) == start

    box = page.locator("figure.graph svg").bounding_box()
    page.mouse.move(box["x"] + 200, box["y"] + 60)
    page.mouse.down()
    page.mouse.move(box["x"] + 100, box["y"] + 40, steps=4)
    page.mouse.up()
    dragged = view_box(page)
    assert dragged[0] == pytest.approx(100, abs=1) and dragged[1] == pytest.approx(20, abs=1)

    page.mouse.move(box["x"] + 150, box["y"] + 50)
    page.mouse.wheel(0, 300)  # wheel down: zoom out about the pointer
    wheeled = view_box(page)
    assert wheeled[2] > dragged[2]

    page.click("[data-graph-zoom=fit]")
    fitted = view_box(page)
    assert float(page.get_attribute("figure.graph", "data-graph-scale")) < 1
    assert fitted[2] >= 40 / 10 * 150  # four columns of 150 px boxes at least

    page.focus("figure.graph svg")
    page.keyboard.press("1")  # reset
    assert view_box(page) == start
    page.keyboard.press("+")
    page.keyboard.press("ArrowRight")
    keyed = view_box(page)
    assert keyed[2] < start[2] and keyed[0] > 0
    # The run's end re-renders the graph live (a new element): the reader's view stays.
    page.wait_for_selector("#run-live[data-run-closed=true] figure.graph[data-graph-ready]")
    assert view_box(page) == keyed
    assert page.inner_text("[data-graph-readout]") == "125%"


def test_a_300_step_plan_draws_every_step_and_fits_the_view_on_a_phone(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    page.set_viewport_size(PHONE)
    submit(page, big_plan(300), "Three hundred steps")
    until(page, "() => !!document.querySelector('figure.graph[data-graph-ready]')")
    assert page.locator("figure.graph g.node").count() == 300
    assert page.locator("figure.graph path.edge").count() == 580
    assert sideways(page) == 0
    page.click("[data-graph-zoom=fit]")
    assert float(page.get_attribute("figure.graph", "data-graph-scale")) < 0.2
    # One evaluate: the live re-render may swap the graph between two separate calls.
    outside = page.evaluate(
        """() => {
          const svg = document.querySelector('figure.graph svg').getBoundingClientRect();
          return [...document.querySelectorAll('figure.graph g.node rect')]
            .map(r => r.getBoundingClientRect())
            .filter(b => b.left < svg.left - 1 || b.right > svg.right + 1
                      || b.top < svg.top - 1 || b.bottom > svg.bottom + 1).length;
        }"""
    )
    assert outside == 0
    assert page.evaluate(LABELS_OUTSIDE) == []
    pages.screenshot(page, "three-hundred")

"""The evaluations page in Chromium, after a suite ran in a database of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import LiveServer, Pages

pytestmark = pytest.mark.browser

SUITE = """name: smoke
tasks:
  - name: hello
    text: Say hello
    plan: {goal: Say hello, steps: [{id: a, action: noop}, {id: b, action: echo, params: {text: hi}, depends_on: [a]}]}
    expect: {outcome: succeeded, tools: {order: [noop, echo]}}
  - name: wrong
    text: Say hello, expecting a failure
    plan: {goal: Say hello, steps: [{id: a, action: noop}]}
    expect: {outcome: failed}
"""


def test_a_suite_run_shows_its_plots_and_planners(
    pages: Pages, daphne_server: LiveServer, tmp_path: Path
) -> None:
    suite = tmp_path / "smoke.yaml"
    suite.write_text(SUITE)
    out = daphne_server.manage("evaluate", str(suite), "--fail-under", "0.5")
    assert "passed 1/2 (50%)" in out
    page = pages.login("reviewer")
    page.click("nav >> text=Evaluations")
    section = page.locator("section[data-suite=smoke]")
    assert section.locator("[data-latest-pass-rate]").inner_text() == "1/2"
    assert section.locator("figure.plot svg polyline").count() == 6
    caption = section.locator("figure[data-plot='pass rate'] figcaption").inner_text()
    assert caption.startswith("pass rate: 50%")
    assert page.locator("[data-planner-table] tbody tr").first.inner_text().split("\t")[:5] == [
        "smoke",
        "manual",
        "default",
        "2",
        "50%",
    ]
    # Nothing the suite ran shows among the server's runs: it had a database of its own.
    titles = "select count(*) from runs_task where title like 'Say hello%'"
    assert daphne_server.query(titles) == [(0,)]

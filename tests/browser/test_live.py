"""The dashboard in Chromium against a live Daphne: live steps, live list, restart recovery, pages."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages

pytestmark = pytest.mark.browser

# Holds the server's one worker until ``release_worker`` cancels it: a run submitted meanwhile
# waits, queued, however slow the machine (a fixed sleep ran out first on a busy one).
BLOCKER = """goal: Keep the worker busy
steps:
  - {id: wait, action: sleep, params: {ms: 300000}}
"""


def release_worker(server: LiveServer, blocker: int) -> None:
    """Cancel the ``BLOCKER`` run ``blocker``: the runs queued behind it start."""
    server.manage(
        "shell",
        "-c",
        "from django.db import transaction\n"
        "from runs.lifecycle.cancel import run_cancel\n"
        "with transaction.atomic():\n"
        f"    run_cancel(run_id={blocker}, user=None, reason='release the worker')",
    )


def sleepy_plan(steps: int, ms: int) -> str:
    lines = ["goal: Sleep in a row", "steps:"]
    for i in range(steps):
        after = f", depends_on: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, action: sleep, params: {{ms: {ms}}}{after}}}")
    return "\n".join(lines) + "\n"


def submit(page: Any, plan: str, title: str) -> int:
    """Submit a plan through the new-run form; returns the new run's id from the detail URL."""
    page.goto("/runs/new/")
    page.fill("#id_title", title)
    page.fill("#id_plan", plan)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/runs/*/")
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def mark_page(page: Any) -> None:
    """Tag the window: the tag survives live updates and disappears on any reload."""
    page.evaluate("window.__sameDocument = true")


def still_same_document(page: Any) -> bool:
    return page.evaluate("window.__sameDocument === true")


def transcript_seqs(page: Any) -> list[int]:
    return [
        int(s)
        for s in page.eval_on_selector_all(
            "#transcript tbody tr", "rs => rs.map(r => r.dataset.seq)"
        )
    ]


def transcript_lines(page: Any) -> list[list[str]]:
    """Each transcript row's seq and summary, as the browser shows them."""
    return page.eval_on_selector_all(
        "#transcript tbody tr", "rs => rs.map(r => [r.dataset.seq, r.cells[4].textContent])"
    )


def db_seqs(server: LiveServer, run_id: int) -> list[int]:
    rows = server.query(
        "SELECT seq FROM runs_transcriptevent WHERE run_id = ? ORDER BY seq", run_id
    )
    return [seq for (seq,) in rows]


def test_an_operator_sees_the_demo_migration_steps_turn_green_without_reloading(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    blocker = submit(page, BLOCKER, "Busy worker")
    page.goto("/runs/new/?demo=migration")
    page.wait_for_selector('[data-plan-check="valid"]')  # checked inline before submit
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/runs/*/")
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    mark_page(page)
    marks = page.locator('tr[data-phase="main"] [data-step-status] .mark')
    assert marks.count() == 6
    assert set(marks.all_inner_texts()) == {"·"}  # queued behind the busy worker
    assert page.locator("figure.graph g.node:not([data-phase=rollback])").count() == 6
    assert page.locator("figure.graph g.node[data-phase=rollback]").count() == 2
    pages.screenshot(page, "queued")

    page.wait_for_selector('[data-live-state="live"]')
    release_worker(daphne_server, blocker)
    page.wait_for_selector(
        'tr[data-step-key="read_schema"][data-status="succeeded"]', timeout=20_000
    )
    page.wait_for_selector("[data-run-status].status-succeeded", timeout=20_000)
    assert marks.all_inner_texts() == ["✓"] * 6
    graph_marks = page.eval_on_selector_all(
        "figure.graph g.node:not([data-phase=rollback]) .mark",
        "marks => marks.map(m => m.textContent)",
    )
    assert graph_marks == ["✓"] * 6
    assert page.locator("figure.graph g.node.status-succeeded").count() == 6
    # A run that succeeded never needed its rollback steps.
    assert page.locator("figure.graph g.node[data-phase=rollback].status-succeeded").count() == 0
    assert page.inner_text("[data-progress]") == "6/6"
    segments = page.eval_on_selector_all(
        ".progress [data-outcome-bar] .seg",
        "ss => ss.map(s => [s.dataset.outcome, s.dataset.count])",
    )
    assert segments == [["succeeded", "6"]]
    # The page closes its live updates once its re-render after the end has come back.
    page.wait_for_selector('[data-live-state="finished"]', timeout=10_000)
    assert page.locator("[data-cancel-form]").count() == 0
    # Timings and outputs arrived with the events too.
    assert page.inner_text('tr[data-step-key="backup"] [data-step-took]').endswith(" s")
    assert "backups/demo.db" in page.text_content('tr[data-step-key="backup"] [data-step-result]')
    assert still_same_document(page), "the page reloaded instead of updating live"
    assert transcript_seqs(page) == db_seqs(daphne_server, run_id)
    pages.screenshot(page, "succeeded")
    live_lines = transcript_lines(page)
    page.reload()
    assert transcript_lines(page) == live_lines, "a live line differs from the reloaded one"


def test_the_runs_list_shows_a_new_run_and_its_status_changes_live(
    pages: Pages, daphne_server: LiveServer
) -> None:
    watcher = pages.login("reviewer")
    watcher.wait_for_selector('[data-live-state="live"]')
    mark_page(watcher)
    operator = pages.login("operator")
    run_id = submit(operator, sleepy_plan(2, 400), "Seen live on the list")

    row = f'#runs-table tr[data-run-id="{run_id}"]'
    watcher.wait_for_selector(row)
    assert "Seen live on the list" in watcher.inner_text(row)
    watcher.wait_for_selector(f'{row}[data-status="executing"]', timeout=20_000)
    pages.screenshot(watcher, "executing")
    watcher.wait_for_selector(f'{row}[data-status="succeeded"]', timeout=20_000)
    assert watcher.inner_text(f"{row} td.num") == "2/2"
    assert still_same_document(watcher), "the list reloaded instead of updating live"
    pages.screenshot(watcher, "succeeded")


def test_a_page_recovers_from_a_server_restart_mid_run_without_missing_or_repeating_lines(
    pages: Pages, daphne_server: LiveServer
) -> None:
    pages.allowed.append("WebSocket connection to")  # refused while the server is down
    page = pages.login("operator")
    run_id = submit(page, sleepy_plan(8, 500), "Survives a restart")
    mark_page(page)
    page.evaluate(
        """() => {
          window.__states = [];
          const badge = document.querySelector('[data-live-state]');
          new MutationObserver(() => window.__states.push(badge.dataset.liveState))
            .observe(badge, {attributes: true, attributeFilter: ['data-live-state']});
        }"""
    )
    page.wait_for_selector('tr[data-step-key="s1"][data-status="succeeded"]', timeout=20_000)

    daphne_server.kill()
    page.wait_for_selector('[data-live-state="reconnecting"]', timeout=10_000)
    pages.screenshot(page, "reconnecting")
    time.sleep(1.0)  # the page keeps retrying against a closed port
    daphne_server.start()

    page.wait_for_selector("[data-run-status].status-succeeded", timeout=40_000)
    states = page.evaluate("window.__states")
    down = states.index("reconnecting")
    assert "live" in states[down:], f"never live again after the restart: {states}"
    assert still_same_document(page), "the page reloaded instead of resuming its websocket"
    seqs = transcript_seqs(page)
    assert len(seqs) == len(set(seqs)), "a transcript line is shown twice"
    assert seqs == db_seqs(daphne_server, run_id), "the page's transcript differs from the database"
    assert page.locator('tr[data-phase="main"][data-status="succeeded"]').count() == 8
    pages.screenshot(page, "recovered")


def test_every_page_renders_without_console_errors(pages: Pages, daphne_server: LiveServer) -> None:
    page = pages.login("operator")
    run_id = submit(page, sleepy_plan(3, 10), "Something to look at")
    page.wait_for_selector("[data-run-status].status-succeeded", timeout=20_000)
    visits = {
        "list": "/",
        "list-filtered": "/?status=succeeded&submitter=operator&q=a&created_from=2020-01-01",
        "new": "/runs/new/",
        "new-demo": "/runs/new/?demo=deploy",
        "detail": f"/runs/{run_id}/",
        "transcript": f"/runs/{run_id}/transcript/?before=3",
        "tools": "/tools/",
    }
    for name, url in visits.items():
        response = page.goto(url)
        assert response is not None and response.status == 200, (name, response and response.status)
        page.wait_for_load_state("networkidle")
        pages.screenshot(page, name)

    # Inline plan problems appear while typing, before anything is submitted.
    page.goto("/runs/new/")
    page.fill("#id_plan", "steps:\n  - {id: a, action: launch_rockets}\n")
    page.wait_for_selector('[data-plan-check="invalid"]')
    assert "launch_rockets" in page.inner_text("#plan-check")
    pages.screenshot(page, "new-invalid")

    reviewer = pages.login("reviewer")
    for url in ("/", f"/runs/{run_id}/", "/tools/"):
        response = reviewer.goto(url)
        assert response is not None and response.status == 200
        reviewer.wait_for_load_state("networkidle")
    pages.allowed.append("the server responded with a status of 403")
    assert reviewer.goto("/runs/new/").status == 403

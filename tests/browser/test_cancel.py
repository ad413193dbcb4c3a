"""Cancel and cancel-and-roll-back from the run page, in Chromium against a live Daphne."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages

pytestmark = pytest.mark.browser

# A step with side effects (it posts to the outbox) and its own undo, then a long wait.
PLAN = """goal: Announce, then wait
steps:
  - id: announce
    action: notify_team
    params: {message: "release starting"}
    undo: {action: notify_team, params: {message: "release called off"}}
  - id: check
    action: echo
    params: {text: reads only}
  - {id: wait, action: sleep, params: {ms: 60000}, depends_on: [announce, check]}
"""


def submit(page: Any, title: str) -> int:
    page.goto("/runs/new/")
    page.fill("#id_title", title)
    page.fill("#id_plan", PLAN)
    page.click("form.stack button[type=submit]")
    page.wait_for_url("**/runs/*/")
    page.wait_for_selector('tr[data-step-key="wait"][data-status="running"]', timeout=20_000)
    return int(page.url.rstrip("/").rsplit("/", 1)[1])


def test_cancel_asks_first_naming_the_finished_steps_with_side_effects(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    run_id = submit(page, "cancel, then think again")
    asked: list[str] = []

    def dismiss(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("[data-cancel]")
    # Said no: nothing was sent, the run goes on.
    assert len(asked) == 1 and "announce" in asked[0] and "check" not in asked[0]
    assert "stay" in asked[0]
    rows = daphne_server.query(
        "SELECT status, cancel_requested_at FROM runs_run WHERE id = ?", run_id
    )
    assert rows == [("executing", None)]
    assert page.locator(".messages").count() == 0 or "cancel" not in page.inner_text(".messages")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-cancel]")
    page.wait_for_selector("[data-run-status].status-cancelled", timeout=20_000)
    steps = dict(daphne_server.query("SELECT key, status FROM runs_step WHERE run_id = ?", run_id))
    assert steps["announce"] == "succeeded" and steps["undo-announce"] == "cancelled"


def test_cancel_and_roll_back_undoes_what_succeeded_and_says_who_and_why(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    run_id = submit(page, "cancel and roll back")
    asked: list[str] = []

    def accept(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.fill("[data-cancel-reason]", "wrong release")
    page.click("[data-cancel-rollback]")
    assert len(asked) == 1 and "undoes" in asked[0] and "announce" in asked[0]
    page.wait_for_selector("[data-run-status].status-rolled_back", timeout=30_000)
    page.reload()
    reason = page.inner_text("[data-stop-reason]")
    assert reason.startswith("cancelled by operator: wrong release; rolled back")
    assert "wrong release" in page.inner_text("[data-cancel-requested]")
    announce = 'tr[data-step-key="announce"]'
    assert page.get_attribute(announce, "data-status") == "rolled_back"
    assert page.inner_text(f"{announce} [data-undone-by]") == "undone by undo-announce"
    assert page.get_attribute('tr[data-step-key="check"]', "data-status") == "succeeded"
    undo = 'tr[data-step-key="undo-announce"]'
    assert page.get_attribute(undo, "data-status") == "succeeded"
    assert page.inner_text(f"{undo} [data-undoes]") == "undoes announce"
    assert page.get_attribute('tr[data-step-key="wait"]', "data-status") == "cancelled"
    assert page.locator("[data-cancel-form]").count() == 0
    rows = daphne_server.query(
        "SELECT cancel_rollback, cancel_reason FROM runs_run WHERE id = ?", run_id
    )
    assert rows == [(1, "wrong release")]

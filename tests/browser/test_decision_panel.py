"""The review item's decision panel and the queue's keys, in Chromium."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages
from tests.browser.test_reviews import ORIGINAL, notify_needs_approval, operator_waits
from tests.browser.test_screens import PHONE, sideways, violations

pytestmark = pytest.mark.browser

__all__ = ["notify_needs_approval"]  # the fixture, used by name


def test_the_panel_keeps_its_input_after_a_refusal_and_approve_waits_for_the_checklist(
    pages: Pages, daphne_server: LiveServer, notify_needs_approval: None
) -> None:
    operator, run_id, item_id = operator_waits(pages, daphne_server)
    reviewer = pages.login("reviewer")
    reviewer.goto("/reviews/")
    row = f'#reviews-table tr[data-item-id="{item_id}"]'
    reviewer.wait_for_selector(row)
    # Keyboard triage: j down to the item, o opens it.
    position = reviewer.eval_on_selector_all(
        "#reviews-table tbody tr", f"rs => rs.findIndex(r => r.dataset.itemId === '{item_id}')"
    )
    for _ in range(position + 1):
        reviewer.keyboard.press("j")
    assert reviewer.get_attribute(row, "aria-selected") == "true"
    reviewer.keyboard.press("o")
    reviewer.wait_for_url(f"**/reviews/{item_id}/")

    approve = reviewer.locator("[data-approve-button]")
    assert approve.is_disabled()
    boxes = reviewer.locator('[data-decision-form] input[name="checklist"]')
    for box in boxes.all():
        box.check()
    assert approve.is_enabled()
    reviewer.check("[data-next]")

    # Reject without a reason: refused next to the reason field, nothing lost.
    pages.allowed.append("status of 409 (Conflict)")
    reviewer.click('[data-decision-form] button:has-text("Reject")')
    reviewer.wait_for_selector('[data-field-error="reason"]')
    assert reviewer.evaluate(
        "() => document.querySelector('#decide').getBoundingClientRect().top"
    ) < reviewer.evaluate("() => document.querySelector('table.steps').getBoundingClientRect().top")
    assert all(box.is_checked() for box in boxes.all())
    assert reviewer.is_checked("[data-next]") and approve.is_enabled()
    pages.screenshot(reviewer, "refused")

    reviewer.fill("#reason", "fine")
    approve.click()
    reviewer.wait_for_url(lambda url: not url.endswith(f"/reviews/{item_id}/"))
    assert reviewer.locator(".message.success").count() == 1
    operator.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    assert daphne_server.query("SELECT status FROM reviews_reviewitem WHERE id = ?", item_id) == [
        ("approved",)
    ]


def test_an_edit_is_previewed_as_a_diff_and_a_refused_save_keeps_edit_ticks_and_reason(
    pages: Pages, daphne_server: LiveServer, notify_needs_approval: None
) -> None:
    operator, run_id, item_id = operator_waits(pages, daphne_server)
    reviewer = pages.login("reviewer")
    reviewer.goto(f"/reviews/{item_id}/")
    editor = reviewer.locator("#plan")
    editor.fill(editor.input_value().replace(ORIGINAL, "hello from the reviewer"))
    reviewer.fill("#reason", "wording")
    boxes = reviewer.locator('[data-decision-form] input[name="checklist"]')
    boxes.first.check()

    reviewer.click("[data-preview-button]")
    reviewer.wait_for_selector("[data-edit-preview]")
    change = reviewer.locator('[data-edit-preview] [data-diff-field="params.message"]')
    assert "hello from the reviewer" in change.inner_text()
    assert ORIGINAL in change.locator("del").inner_text()
    assert "kept: check" in reviewer.inner_text("[data-edit-preview]")
    # Nothing saved; everything entered is still there.
    assert daphne_server.query("SELECT count(*) FROM runs_plan WHERE run_id = ?", run_id) == [(1,)]
    assert "hello from the reviewer" in editor.input_value()
    assert reviewer.input_value("#reason") == "wording" and boxes.first.is_checked()
    assert violations(reviewer) == []
    pages.screenshot(reviewer, "preview")

    # Save and approve with the checklist half ticked: refused beside the checklist, nothing lost.
    pages.allowed.append("status of 409 (Conflict)")
    reviewer.evaluate(
        "() => document.querySelector('[data-save-approve-button]').removeAttribute('disabled')"
    )
    reviewer.click("[data-save-approve-button]")
    reviewer.wait_for_selector('[data-field-error="checklist"]')
    assert "hello from the reviewer" in reviewer.locator("#plan").input_value()
    assert reviewer.input_value("#reason") == "wording"
    assert boxes.first.is_checked() and not boxes.nth(1).is_checked()
    assert daphne_server.query("SELECT count(*) FROM runs_plan WHERE run_id = ?", run_id) == [(1,)]

    for box in boxes.all():
        box.check()
    reviewer.click("[data-save-approve-button]")
    reviewer.wait_for_url(f"**/reviews/{item_id}/")
    reviewer.wait_for_selector(".message.success")
    operator.wait_for_selector("[data-run-status].status-succeeded", timeout=30_000)
    assert daphne_server.query(
        "SELECT version, source FROM runs_plan WHERE run_id = ? ORDER BY version", run_id
    ) == [(1, "operator"), (2, "reviewer")]


def _caret_on(page: Any, text: str) -> None:
    """Select ``text`` in the plan editor, as a reviewer would before typing over it."""
    page.evaluate(
        """(text) => {
          const editor = document.querySelector('#plan');
          const at = editor.value.indexOf(text);
          editor.focus();
          editor.setSelectionRange(at, at + text.length);
        }""",
        text,
    )


def test_typing_an_edit_shows_its_diff_and_problems_live_and_saves_nothing(
    pages: Pages, daphne_server: LiveServer, notify_needs_approval: None
) -> None:
    operator, run_id, item_id = operator_waits(pages, daphne_server)
    reviewer = pages.login("reviewer")
    reviewer.set_viewport_size(PHONE)
    reviewer.goto(f"/reviews/{item_id}/")
    reviewer.evaluate("() => { window.sameDocument = true; }")
    stored = reviewer.input_value("#plan")
    assert reviewer.inner_text("[data-live-preview]").strip() == ""

    # A changed param, typed: its diff follows without pressing anything.
    _caret_on(reviewer, "unit")
    reviewer.keyboard.type("smoke")
    change = reviewer.locator('[data-live-preview] [data-diff-field="params.suite"]')
    change.wait_for()
    assert "smoke" in change.locator("ins").inner_text()
    assert "unit" in change.locator("del").inner_text()
    assert "Your edit against v1 (not saved)" in reviewer.inner_text("[data-live-preview]")
    assert violations(reviewer) == []
    assert sideways(reviewer) == 0
    pages.screenshot(reviewer, "live-preview")

    # A tool that does not exist: the problem shows next to the diff.
    _caret_on(reviewer, "run_tests")
    reviewer.keyboard.type("run_no_such_tests")
    problems = reviewer.locator("[data-live-preview] [data-preview-problems]")
    problems.wait_for()
    assert "run_no_such_tests" in problems.inner_text()
    assert reviewer.locator('[data-live-preview] [data-diff-field="action"]').count() == 1

    # Broken YAML: its syntax error (the preview answers 422), and no diff.
    pages.allowed.append("status of 422")
    reviewer.keyboard.type(": [")
    reviewer.locator("[data-live-preview] [data-preview-syntax-error]").wait_for()
    assert reviewer.locator("[data-live-preview] [data-edit-preview]").count() == 0

    # Back to the stored text: the preview empties.
    reviewer.fill("#plan", stored)
    reviewer.wait_for_function(
        "() => document.querySelector('[data-live-preview]').textContent.trim() === ''"
    )
    # All of it in one document, and nothing stored: still v1, no new version, no audit of a save.
    assert reviewer.evaluate("() => window.sameDocument") is True
    assert daphne_server.query("SELECT count(*) FROM runs_plan WHERE run_id = ?", run_id) == [(1,)]
    assert daphne_server.query(
        "SELECT count(*) FROM reviews_auditentry WHERE item_id = ? AND action = ?",
        item_id,
        "review.plan_saved",
    ) == [(0,)]
    assert operator.locator("[data-run-status].status-awaiting_approval").count() == 1

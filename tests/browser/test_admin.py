"""The tool registry's admin in Chromium: config help per kind, JSON errors that point, a favicon."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages

pytestmark = pytest.mark.browser

BROKEN_CONFIG = '{\n  "argv": ["a",]\n}'


def test_an_admin_editing_a_tool_gets_config_help_a_json_position_and_a_favicon(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("admin")
    responses: list[Any] = []
    page.on("response", lambda response: responses.append(response))
    ((tool_id,),) = daphne_server.query("SELECT id FROM runs_tool WHERE name = 'deploy'")
    page.goto(f"/admin/runs/tool/{tool_id}/change/")

    help_text = page.inner_text(".field-config .help")
    assert "kinds/.py" not in help_text
    for kind in ("python", "shell", "http"):
        assert page.locator(f".field-config .help li b:text-is('{kind}')").count() == 1
    assert 'shell: either "argv"' in help_text

    page.fill("#id_config", BROKEN_CONFIG)
    page.click("input[name=_save]")
    page.wait_for_selector(".field-config .errorlist")
    assert page.inner_text(".field-config .errorlist") == (
        "Enter a valid JSON: Expecting value at line 2, column 16."
    )
    pages.screenshot(page, "json-error")

    # Chromium's own /favicon.ico request is no page response: a 404 there shows as a
    # console error, which the pages fixture fails the test on.
    page.wait_for_load_state("networkidle")
    missing = [r.url for r in responses if r.status == 404]
    assert missing == [], f"the admin page asked for missing files: {missing}"
    assert page.locator("link[rel=icon]").count() == 1
    icon = page.get_attribute("link[rel=icon]", "href") or ""
    fetched = {r.status for r in responses if r.url.endswith(icon)}
    assert fetched == {200}, f"the browser's requests for {icon!r} got {fetched}"
    favicon = page.request.get("/favicon.ico")  # pages without the link ask for this
    assert favicon.status == 200 and favicon.url.endswith(icon)

"""Steps in words on the new-run page: mapped offline as typed, a model offered, refusals shown."""

from __future__ import annotations

import socket

import pytest

from tests.browser.conftest import LiveServer, Pages

pytestmark = pytest.mark.browser

RELEASE = "1. Back up prod.db\n2. Run the smoke tests\n3. Deploy 2.5.0 to staging\n"


def test_a_model_without_its_key_is_offered_as_unavailable_and_refused_with_what_to_set(
    pages: Pages,
) -> None:
    pages.allowed.append("status of 422")  # the refusal is a 422, which the console notes
    page = pages.login("operator")
    page.goto("/runs/new/")
    page.fill("textarea[name=plan]", RELEASE)
    page.wait_for_selector('[data-words-mapped-by="offline"]')
    choice = "[data-words-model-choice] option[value=openai]"
    assert page.eval_on_selector(choice, "o => o.disabled")
    assert "set OPENAI_API_KEY" in page.get_attribute(choice, "title")
    # The key was removed after the page was drawn: the server refuses, the check says why.
    page.eval_on_selector(
        "[data-words-model-choice]", "s => { s.options[0].disabled = false; s.value = 'openai'; }"
    )
    page.click("text=Map with the model")
    error = page.wait_for_selector("[data-words-error]")
    assert "The openai planner is not available here: set OPENAI_API_KEY" in error.inner_text()
    assert page.is_visible('[data-words-mapped-by="offline"]')  # the offline proposal stays


def test_a_model_server_that_cannot_be_reached_is_said_once_above_the_offline_mapping(
    pages: Pages, daphne_server: LiveServer
) -> None:
    pages.allowed.append("status of 503")  # the refusal is a 503, which the console notes
    with socket.socket() as held:  # bound, never listening: connections to it are refused
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/v1"
        env = dict(daphne_server.env)
        daphne_server.stop()
        daphne_server.env["PLANNERWEB_LOCAL_BASE_URL"] = url
        daphne_server.start()
        try:
            page = pages.login("operator")
            page.goto("/runs/new/")
            page.fill("textarea[name=plan]", RELEASE)
            page.wait_for_selector('[data-words-mapped-by="offline"]')
            page.select_option("[data-words-model-choice]", "compatible")
            page.click("text=Map with the model")
            error = page.wait_for_selector("[data-words-error]", timeout=20_000)
            assert f"The compatible planner cannot be reached at {url}" in error.inner_text()
            assert page.is_visible('[data-words-mapped-by="offline"]')
        finally:  # the other tests get the server as it was
            daphne_server.stop()
            daphne_server.env = env
            daphne_server.start()

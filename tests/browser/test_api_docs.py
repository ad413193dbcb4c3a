"""The API's Swagger page in Chromium: every operation rendered, no error, nothing fetched from outside."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from tests.browser.conftest import LiveServer, Pages

pytestmark = pytest.mark.browser
ZERO_WIDTH_SPACE = "\u200b"


def operations(server: LiveServer) -> list[str]:
    with urllib.request.urlopen(f"{server.url}/api/openapi.json", timeout=10) as response:
        document = json.load(response)
    return [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_the_api_docs_render_every_operation_without_an_error(
    pages: Pages, daphne_server: LiveServer
) -> None:
    page = pages.login("operator")
    outside: list[str] = []
    failed: list[str] = []

    def sent(request: Any) -> None:
        if not request.url.startswith((daphne_server.url, "data:", "blob:")):
            outside.append(request.url)

    page.on("request", sent)

    def broke(request: Any) -> None:
        # Chromium may abort its own favicon fetch while the page is busy; not the docs' error.
        if not (request.url.endswith("/favicon.svg") and request.failure == "net::ERR_ABORTED"):
            failed.append(f"{request.url} {request.failure}")

    page.on("requestfailed", broke)
    page.goto("/api/docs")
    page.wait_for_selector(".swagger-ui .opblock")
    expected = operations(daphne_server)
    shown = [
        " ".join(text.split())
        for text in page.locator(
            ".opblock .opblock-summary-method, .opblock .opblock-summary-path"
        ).all_inner_texts()
    ]
    shown = [text.replace(ZERO_WIDTH_SPACE, "") for text in shown]  # Swagger's line-break hints
    rendered = {f"{shown[i]} {shown[i + 1]}" for i in range(0, len(shown), 2)}
    assert rendered == set(expected)
    # Swagger reports a schema it cannot read (a duplicated key, say) in its errors panel.
    assert page.locator(".swagger-ui .errors-wrapper").count() == 0
    assert outside == [] and failed == []

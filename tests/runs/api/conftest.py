"""API test helpers: clients authenticated by a Bearer token or a browser session."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from runs.models import Tool
from runs.tokens import api_token_create

VALID_PLAN: dict[str, Any] = {
    "goal": "Say hello twice",
    "steps": [
        {"id": "first", "action": "noop", "description": "the first hello"},
        {"id": "second", "action": "noop", "depends_on": ["first"]},
    ],
    "rollback": [{"action": "noop", "description": "undo"}],
}


class ApiClient:
    """A Django test client that talks JSON to /api/ with a Bearer token (or none)."""

    def __init__(self, token: str | None = None, client: Client | None = None) -> None:
        self.client = client or Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> Any:
        return self.client.get(f"/api{path}", params or {}, headers={**self.headers, **headers})

    def _send(self, method: str, path: str, body: Any, **headers: str) -> Any:
        send = getattr(self.client, method)
        return send(
            f"/api{path}",
            body if isinstance(body, str | bytes) else _json(body),
            content_type="application/json",
            headers={**self.headers, **headers},
        )

    def post(self, path: str, body: Any = None, **headers: str) -> Any:
        return self._send("post", path, {} if body is None else body, **headers)

    def put(self, path: str, body: Any, **headers: str) -> Any:
        return self._send("put", path, body, **headers)

    def patch(self, path: str, body: Any, **headers: str) -> Any:
        return self._send("patch", path, body, **headers)

    def delete(self, path: str, **headers: str) -> Any:
        return self.client.delete(f"/api{path}", headers={**self.headers, **headers})


def _json(body: Any) -> str:
    import json

    return json.dumps(body)


def api_as(user: User | None) -> ApiClient:
    """A client acting as ``user`` through a fresh personal token (anonymous for None)."""
    if user is None:
        return ApiClient()
    return ApiClient(api_token_create(user=user, name="tests").plaintext)


@pytest.fixture
def noop_tool(db: None) -> Tool:
    return Tool.objects.create(
        name="noop",
        kind="python",
        config={"callable": "runs.tools.builtin.noop"},
        parameters_schema={"type": "object"},
        description="Return at once.",
    )

"""The small pages: the tool list and the login page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser, User
from django.test import RequestFactory
from django.urls import reverse

from runs.models import Tool
from runs.views import LoginView
from tests.runs.views.conftest import client_for

pytestmark = pytest.mark.django_db


def test_the_tools_page_lists_each_tool_with_its_parameters_and_flags(reviewer: User) -> None:
    Tool.objects.create(
        name="deploy",
        kind="shell",
        config={"argv": ["/bin/true"]},
        parameters_schema={
            "type": "object",
            "properties": {
                "environment": {"type": "string", "enum": ["staging", "production"]},
                "version": {"type": "string", "description": "what to ship"},
            },
            "required": ["environment"],
        },
        sensitive=True,
        timeout_seconds=90,
    )
    Tool.objects.create(name="old_tool", kind="python", config={}, enabled=False)
    page = client_for(reviewer).get(reverse("runs:tools")).content.decode()
    assert "deploy" in page and "shell" in page
    assert "environment" in page and "staging, production" in page and "what to ship" in page
    assert "sensitive" in page and "90 s" in page
    assert "old_tool" in page and "disabled" in page


def render_login(settings: Any, *, show: bool) -> str:
    settings.DEBUG = False
    settings.PLANNERWEB_SHOW_DEMO_LOGINS = show
    request = RequestFactory().get("/accounts/login/")
    request.user = AnonymousUser()
    request.session = {}  # type: ignore[assignment]
    response = LoginView.as_view()(request)
    return response.render().content.decode()


def test_the_login_page_lists_the_demo_logins_when_enabled(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PLANNERWEB_DEMO_PASSWORD", raising=False)
    page = render_login(settings, show=True)
    assert "Demo logins" in page
    assert "<code>operator</code>" in page and "<code>admin</code>" in page


def test_the_login_page_hides_the_demo_logins_by_default(settings: Any) -> None:
    page = render_login(settings, show=False)
    assert "Demo logins" not in page
    assert 'name="username"' in page and 'name="password"' in page


def test_the_login_page_never_prints_a_password_taken_from_the_environment(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANNERWEB_DEMO_PASSWORD", "s3cret-demo")
    page = render_login(settings, show=True)
    assert "s3cret-demo" not in page and "$PLANNERWEB_DEMO_PASSWORD" in page

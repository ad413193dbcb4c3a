"""The tool registry page and the login page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from runs.demo import DEMO_USERS, demo_password_is_username
from runs.models import Tool
from runs.permissions import can_view_runs, role_required


@dataclass(frozen=True)
class ParameterRow:
    name: str
    type: str
    required: bool
    description: str
    enum: list[Any] | None
    default: str


@require_GET
@role_required(can_view_runs)
def tool_list(request: HttpRequest) -> HttpResponse:
    """The tool registry with each tool's parameters."""
    tools = [(tool, _parameters(tool.parameters_schema)) for tool in Tool.objects.order_by("name")]
    return render(request, "runs/tool_list.html", {"tools": tools})


def _parameters(schema: Any) -> list[ParameterRow]:
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    required = schema.get("required")
    if not isinstance(required, list):
        required = []
    rows = []
    for name, prop in schema["properties"].items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type", "any")
        rows.append(
            ParameterRow(
                name=str(name),
                type=" | ".join(map(str, kind)) if isinstance(kind, list) else str(kind),
                required=name in required,
                description=str(prop.get("description", "")),
                enum=prop["enum"] if isinstance(prop.get("enum"), list) else None,
                default=json.dumps(prop["default"], ensure_ascii=False)
                if "default" in prop
                else "",
            )
        )
    return rows


# --------------------------------------------------------------------------- login
class LoginView(auth_views.LoginView):
    """Django's login page, listing the demo accounts when DEBUG or PLANNERWEB_SHOW_DEMO_LOGINS."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        show = settings.DEBUG or getattr(settings, "PLANNERWEB_SHOW_DEMO_LOGINS", False)
        context["demo_logins"] = (
            [
                {
                    "username": u.username,
                    "password": u.username if demo_password_is_username() else None,
                    "does": u.does,
                }
                for u in DEMO_USERS
            ]
            if show
            else []
        )
        return context

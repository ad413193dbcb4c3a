from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from runs.permissions import is_admin, is_operator, is_reviewer


def roles(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    return {
        "user_is_operator": is_operator(user),
        "user_is_reviewer": is_reviewer(user),
        "user_is_admin": is_admin(user),
    }

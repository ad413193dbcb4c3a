"""API authentication (Bearer tokens, browser sessions with CSRF) and role checks.

Every API request is authenticated by one of:
1. ``Authorization: Bearer pw_...``: a personal token; no CSRF (no cookies involved).
2. The Django session cookie: unsafe methods must pass Django's CSRF check
   (``X-CSRFToken`` header), as any form on the dashboard does.
Anonymous requests get 401; signed-in users without the needed role get 403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import APIKeyCookie
from ninja.security.http import HttpAuthBase
from ninja.utils import check_csrf

from runs.api.errors import ApiError
from runs.tokens import api_token_authenticate

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class BearerTokenAuth(HttpAuthBase):
    """``Authorization: Bearer <personal API token>``."""

    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> Any:
        # ninja's HttpBearer logs a malformed header verbatim under DEBUG; a token must never
        # reach a log, so the header is parsed here.
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        user = api_token_authenticate(token.strip())
        if user is None:
            return None
        request.user = user
        request.api_token_used = True  # type: ignore[attr-defined]
        return user


class SessionCsrfAuth(APIKeyCookie):
    """The dashboard's session; unsafe methods need a valid CSRF token."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self) -> None:
        super().__init__(csrf=False)  # checked below, after we know who is asking

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise ApiError(
                403,
                "csrf_failed",
                "CSRF check failed: send the csrftoken cookie's value in an X-CSRFToken header, "
                "or use a Bearer token.",
            )
        return user


AUTH = [BearerTokenAuth(), SessionCsrfAuth()]


def require(request: HttpRequest, check: Callable[[Any], bool], what: str) -> Any:
    """The authenticated user if ``check`` allows them, else 403 saying what was refused."""
    user = request.auth  # type: ignore[attr-defined]
    if not check(user):
        raise ApiError(403, "forbidden", f"Your role does not allow you to {what}.")
    return user


def via_token(request: HttpRequest) -> bool:
    return bool(getattr(request, "api_token_used", False))

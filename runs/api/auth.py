"""API authentication (Bearer tokens, browser sessions with CSRF) and role checks.

Every API request is authenticated by one of:
1. ``Authorization: Bearer pw_...``: a personal token; no CSRF (no cookies involved).
2. The Django session cookie: unsafe methods must pass Django's CSRF check
   (``X-CSRFToken`` header), as any form on the dashboard does.
Anonymous requests get 401; signed-in users without the needed role get 403.
The role is checked by the operation's auth (``role_auth``), before ninja reads
the body, so a caller without the role gets 403 whatever the body holds.
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


Check = Callable[[Any], bool]


def _role(user: Any, check: Check | None, what: str) -> Any:
    """``user`` when ``check`` allows them (or there is no check), else 403 naming ``what``."""
    if check is not None and not check(user):
        raise ApiError(403, "forbidden", f"Your role does not allow you to {what}.")
    return user


class BearerTokenAuth(HttpAuthBase):
    """``Authorization: Bearer <personal API token>``; with ``check``, only users it allows."""

    openapi_scheme = "bearer"

    def __init__(self, check: Check | None = None, what: str = "") -> None:
        super().__init__()
        self.check = check
        self.what = what

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
        return _role(user, self.check, self.what)


class SessionCsrfAuth(APIKeyCookie):
    """The dashboard's session; unsafe methods need a valid CSRF token."""

    param_name = settings.SESSION_COOKIE_NAME

    def __init__(self, check: Check | None = None, what: str = "") -> None:
        super().__init__(csrf=False)  # checked below, after we know who is asking
        self.check = check
        self.what = what

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
        return _role(user, self.check, self.what)


AUTH = [BearerTokenAuth(), SessionCsrfAuth()]


def role_auth(check: Check, what: str) -> list[Any]:
    """An operation's ``auth=``: signed in (token or session) with the role ``check`` asks for.

    ``what`` completes "Your role does not allow you to ...", the 403's sentence.
    """
    return [BearerTokenAuth(check, what), SessionCsrfAuth(check, what)]


def caller(request: HttpRequest) -> Any:
    """The user the operation's auth let in (and whose role it checked)."""
    return request.auth  # type: ignore[attr-defined]


def via_token(request: HttpRequest) -> bool:
    return bool(getattr(request, "api_token_used", False))

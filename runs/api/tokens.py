"""API endpoints for the caller's own personal tokens: list, create (secret shown once), revoke.

A token cannot mint tokens: creating one needs the browser session (or the
``api_token`` command), so a leaked token cannot outlive its own revocation.
"""

from __future__ import annotations

from types import SimpleNamespace

from django.http import HttpRequest
from ninja import Path, Router, Status

from runs.api.auth import caller, role_auth, via_token
from runs.api.errors import ERRORS, ApiError
from runs.api.inputs import MAX_ID
from runs.api.schemas.tokens import NewTokenOut, TokenIn, TokenOut
from runs.models import ApiToken
from runs.permissions import can_view_runs
from runs.tokens import TokenError, api_token_create, api_token_revoke, api_tokens_of

tokens_router = Router(tags=["tokens"], auth=role_auth(can_view_runs, "use the API"))


@tokens_router.get("", response={200: list[TokenOut], **ERRORS}, summary="Your API tokens")
def token_list(request: HttpRequest) -> list[ApiToken]:
    """Your tokens, revoked ones included; never their secrets."""
    return api_tokens_of(caller(request))


@tokens_router.post("", response={201: NewTokenOut, **ERRORS}, summary="Create an API token")
def token_create(request: HttpRequest, payload: TokenIn) -> Status[SimpleNamespace]:
    """Mint a token acting as you; the response holds its secret, shown this once."""
    user = caller(request)
    if via_token(request):
        raise ApiError(
            403,
            "session_required",
            "Create tokens from a signed-in browser session (or manage.py api_token), "
            "not with another token.",
        )
    try:
        new = api_token_create(user=user, name=payload.name)
    except TokenError as exc:
        raise ApiError(
            422,
            "invalid_token_request",
            str(exc),
            fields=[{"field": "name", "code": "invalid", "message": str(exc)}],
        ) from exc
    token = new.token
    fields = ("id", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    return Status(
        201, SimpleNamespace(**{f: getattr(token, f) for f in fields}, token=new.plaintext)
    )


@tokens_router.delete(
    "/{token_id}", response={204: None, **ERRORS}, summary="Revoke one of your tokens"
)
def token_revoke(request: HttpRequest, token_id: int = Path(..., ge=1, le=MAX_ID)) -> Status[None]:
    user = caller(request)
    try:
        api_token_revoke(user=user, token_id=token_id)
    except ApiToken.DoesNotExist:
        raise ApiError(404, "not_found", f"You have no token {token_id}.") from None
    return Status(204, None)

"""The API tokens page: create a token (its secret shown once), list and revoke your tokens."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from runs.models import ApiToken
from runs.permissions import AuthenticatedHttpRequest, can_view_runs, role_required
from runs.tokens import TokenError, api_token_create, api_token_revoke, api_tokens_of


@never_cache
@require_http_methods(["GET", "POST"])
@role_required(can_view_runs)
def token_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    """List your tokens; POST creates one and shows its secret in this response only.

    The secret is rendered straight into the page (never a redirect plus a
    message), so it is stored nowhere: not in the session, not in a cookie.
    """
    created = None
    error = ""
    name = ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            created = api_token_create(user=request.user, name=name)
        except TokenError as exc:
            error = str(exc)
    return render(
        request,
        "runs/tokens.html",
        {
            "tokens": api_tokens_of(request.user),
            "created": created,
            "error": error,
            "name": name if error else "",
        },
        status=422 if error else 200,
    )


@require_POST
@role_required(can_view_runs)
def token_revoke(request: AuthenticatedHttpRequest, token_id: int) -> HttpResponse:
    try:
        token = api_token_revoke(user=request.user, token_id=token_id)
    except ApiToken.DoesNotExist:
        raise Http404("No such token.") from None
    messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("runs:tokens")

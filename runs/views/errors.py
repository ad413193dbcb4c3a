"""Error pages that need more than a template: the 403 page says which role was missing."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from runs.permissions import RoleRequired, user_roles


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Render 403.html with the roles the page needs and the roles the user holds.

    Only role names are shown: nothing about the object that was asked for.
    """
    needed = exception.needed if isinstance(exception, RoleRequired) else ()
    context = {"needed": needed, "held": user_roles(getattr(request, "user", None))}
    return render(request, "403.html", context, status=403)

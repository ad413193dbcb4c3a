"""Roles: the ``operators`` and ``reviewers`` groups, plus staff admins.

Every view, endpoint and consumer asks these functions, never the groups directly.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth import models as auth_models
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails

OPERATORS = "operators"
REVIEWERS = "reviewers"
ROLE_GROUPS = (OPERATORS, REVIEWERS)

User = AbstractBaseUser | AnonymousUser


class AuthenticatedHttpRequest(HttpRequest):
    """The request a ``role_required`` view receives: its user has signed in."""

    user: auth_models.User
    htmx: HtmxDetails  # set by django-htmx's middleware


def _groups(user: Any) -> set[str]:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    cached = getattr(user, "_plannerweb_groups", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True))
        user._plannerweb_groups = cached
    return cached


def is_admin(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.is_staff)


def is_operator(user: Any) -> bool:
    """Operators submit tasks, start and cancel runs."""
    return is_admin(user) or OPERATORS in _groups(user)


def is_reviewer(user: Any) -> bool:
    return is_admin(user) or REVIEWERS in _groups(user)


def can_view_runs(user: Any) -> bool:
    """Anyone with a role may watch runs; users with no role see nothing."""
    return is_operator(user) or is_reviewer(user)


# The role names a person reads, and which of them each check lets in (staff admins pass all).
OPERATOR, REVIEWER, ADMIN = "operator", "reviewer", "admin"
ROLES_NEEDED: dict[Callable[[Any], bool], tuple[str, ...]] = {
    is_admin: (ADMIN,),
    is_operator: (OPERATOR,),
    is_reviewer: (REVIEWER,),
    can_view_runs: (OPERATOR, REVIEWER),
}


def user_roles(user: Any) -> list[str]:
    """The roles ``user`` holds, by name, for pages that say why something was refused."""
    groups = _groups(user)
    held = [(OPERATOR, OPERATORS in groups), (REVIEWER, REVIEWERS in groups)]
    return [name for name, has in held if has] + ([ADMIN] if is_admin(user) else [])


class RoleRequired(PermissionDenied):
    """A refusal that knows which roles would have been let in (empty when unknown)."""

    def __init__(self, needed: tuple[str, ...] = ()) -> None:
        super().__init__("Your role does not allow this.")
        self.needed = needed


def role_required(
    check: Callable[[Any], bool],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """View decorator: anonymous users go to the login page, users without the role get 403."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not check(request.user):
                raise RoleRequired(ROLES_NEEDED.get(check, ()))
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def username(user: AbstractBaseUser | None) -> str | None:
    """The name a transcript or audit entry records for ``user`` (None for the system)."""
    return user.get_username() if user is not None else None

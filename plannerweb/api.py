"""The root REST API: one NinjaAPI at /api/, each app's router mounted, errors mapped once.

Every error body is ``{"detail", "code", "fields"}`` (``runs.api.errors.ErrorOut``);
nothing a client sends can produce a 5xx.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.datastructures import MultiValueDict
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser
from psycopg_pool import PoolTimeout

from reviews.api import audit_router
from reviews.api import router as reviews_router
from reviews.statemachine import (
    ActionNotAllowed,
    AlreadyDecided,
    ChecklistIncomplete,
    DecisionInputInvalid,
    FourEyesViolation,
    NotAllowed,
    PlanInvalid,
    ReviewError,
    StalePlan,
    UnsavedEdit,
)
from runs.api import router as runs_router
from runs.api.auth import AUTH
from runs.api.errors import ApiError
from runs.api.tasks import plan_field
from runs.lifecycle.errors import RunError
from runs.statemachine import TransitionError
from runs.textdata import TextDataError, parse_json


class BoundedParser(Parser):
    """Request bodies through ``runs.textdata.parse_json``: size, depth and digits bounded."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        data: dict[str, Any] = parse_json(request.body)
        return data

    def parse_querydict(
        self, data: MultiValueDict[str, Any], list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        """Query parameters; one that takes a single value may not be repeated."""
        repeated = [k for k in data if k not in list_fields and len(data.getlist(k)) > 1]
        if repeated:
            raise ApiError(
                422,
                "invalid_input",
                f"The parameter {repeated[0]!r} takes one value; it was given more than once.",
                fields=[
                    {"field": k, "code": "repeated", "message": "give it once"} for k in repeated
                ],
            )
        return super().parse_querydict(data, list_fields, request)


api = NinjaAPI(
    title="plannerweb",
    version="1",
    description=(
        "Submit tasks, follow and cancel runs, manage the tool registry, decide review items, "
        "read the audit trail. Authenticate with "
        "`Authorization: Bearer <token>` (create one on the API tokens page) or a browser "
        "session (unsafe methods then need the `X-CSRFToken` header)."
    ),
    urls_namespace="api",
    auth=AUTH,
    docs_url="/docs",
    openapi_url="/openapi.json",
    parser=BoundedParser(),
)
api.add_router("/", runs_router)
api.add_router("/reviews", reviews_router)
api.add_router("/audit", audit_router)


def error(
    request: HttpRequest,
    status: int,
    code: str,
    detail: str,
    fields: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> HttpResponse:
    response = api.create_response(
        request, {"detail": detail, "code": code, "fields": fields, **extra}, status=status
    )
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="plannerweb"'
    return response


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_input",
    429: "throttled",
    503: "unavailable",
}


@api.exception_handler(ApiError)
def _api_error(request: HttpRequest, exc: ApiError) -> HttpResponse:
    return error(request, exc.status, exc.code, exc.detail, exc.fields)


def _bad_body(request: HttpRequest, exc: TextDataError) -> HttpResponse:
    """A body ``BoundedParser`` refused: malformed JSON is 400, JSON beyond a limit 422."""
    if exc.message.startswith("invalid JSON"):
        return error(request, 400, "bad_request", f"The request body is not JSON: {exc}")
    return error(request, 422, "invalid_json", f"The request body is beyond a limit: {exc}")


@api.exception_handler(AuthenticationError)
def _not_authenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return error(
        request,
        401,
        "not_authenticated",
        "Sign in, or send Authorization: Bearer <token> with a valid, unrevoked API token.",
    )


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    if isinstance(exc.__cause__, TextDataError):  # ninja wraps what the parser raised
        return _bad_body(request, exc.__cause__)
    return error(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "error"), str(exc))


@api.exception_handler(ValidationError)
def _invalid_input(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    fields = [_field_error(e) for e in exc.errors]
    first = f" ({fields[0]['field'] or 'body'}: {fields[0]['message']})" if fields else ""
    return error(request, 422, "invalid_input", f"The request is invalid{first}", fields)


# Parameter names endpoints give their body and query schemas (never field names).
WRAPPERS = ("payload", "filters")


def _field_error(e: dict[str, Any]) -> dict[str, Any]:
    # ninja reports (source, [schema parameter,] field, ...): keep the field path only.
    loc = list(e.get("loc", ()))[1:]
    if loc and loc[0] in WRAPPERS:
        loc = loc[1:]
    ctx = e.get("ctx") or {}
    if isinstance(ctx, dict) and ctx.get("path"):  # a value deep inside a field (In._storable)
        loc = [*loc, ctx["path"]]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    return {
        "field": field,
        "code": str(e.get("type", "invalid")),
        "message": str(e.get("msg", "invalid value")),
    }


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(ObjectDoesNotExist)
def _object_not_found(request: HttpRequest, exc: ObjectDoesNotExist) -> HttpResponse:
    return error(request, 404, "not_found", str(exc) or "Not found.")


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return error(request, 403, "forbidden", str(exc) or "Your role does not allow this.")


@api.exception_handler(RunError)
def _run_error(request: HttpRequest, exc: RunError) -> HttpResponse:
    return error(request, 409, "run_conflict", str(exc))


@api.exception_handler(TransitionError)
def _transition_error(request: HttpRequest, exc: TransitionError) -> HttpResponse:
    return error(request, 409, "illegal_transition", str(exc))


@api.exception_handler(ReviewError)
def _review_error(request: HttpRequest, exc: ReviewError) -> HttpResponse:
    """The review services' domain errors; nothing was written when one is raised."""
    if isinstance(exc, PlanInvalid):
        fields = [
            {
                "field": plan_field(str(p.get("path") or "")),
                "code": str(p.get("code", "invalid")),
                "message": str(p.get("message", "")),
            }
            for p in exc.problems
        ]
        return error(request, 422, exc.code, str(exc), fields)
    if isinstance(exc, ChecklistIncomplete):
        fields = [{"field": "checklist", "code": "missing", "message": m} for m in exc.missing]
        return error(request, 422, exc.code, str(exc), fields)
    if isinstance(exc, NotAllowed | FourEyesViolation):
        return error(request, 403, exc.code, str(exc))
    if isinstance(exc, AlreadyDecided | StalePlan | UnsavedEdit):
        return error(request, 409, exc.code, str(exc))
    if isinstance(exc, ActionNotAllowed):
        return error(request, 409, exc.code, str(exc), allowed=exc.allowed)
    if isinstance(exc, DecisionInputInvalid):
        field = [{"field": exc.field or "body", "code": "invalid", "message": str(exc)}]
        return error(request, 422, exc.code, str(exc), field)
    return error(request, 409, "review_conflict", str(exc))


@api.exception_handler(PoolTimeout)
def _pool_exhausted(request: HttpRequest, exc: PoolTimeout) -> HttpResponse:
    """Every pooled database connection stayed busy for DATABASE_POOL_TIMEOUT: try again soon."""
    response = error(request, 503, "unavailable", "The server is busy; try again in a moment.")
    response["Retry-After"] = "1"
    return response

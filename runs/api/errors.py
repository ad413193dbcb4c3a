"""The API's error shape and the exception endpoints raise to produce it.

Every 4xx body is ``{"detail": str, "code": str, "fields": [...] | null}`` (a refused
escalation action adds ``allowed``);
``plannerweb/api.py`` maps each exception class to it once.
"""

from __future__ import annotations

from typing import Any

from ninja import Field, Schema

from runs.api.inputs import storable_problem
from runs.planning.schema import PlanSyntaxError, parse_plan_text


class FieldErrorOut(Schema):
    """One problem with one input field (``field`` is a dotted path such as ``plan.steps[0].action``)."""

    field: str
    code: str
    message: str


class ErrorOut(Schema):
    detail: str
    code: str
    fields: list[FieldErrorOut] | None = None
    allowed: list[str] | None = Field(
        None, description="A refused escalation action: the actions the item offers now."
    )


class ApiError(Exception):
    """An endpoint's refusal: status, a stable machine-readable code, a sentence, and fields."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        fields: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = fields


# The 4xx statuses every endpoint documents: malformed body, auth, role, missing, state, input.
ERROR_STATUSES = frozenset({400, 401, 403, 404, 409, 422})
ERRORS: dict[Any, type[Schema]] = {ERROR_STATUSES: ErrorOut}


def field_error(field: str, code: str, message: str) -> ApiError:
    """A 422 about one input field."""
    return ApiError(
        422, "invalid_input", message, fields=[{"field": field, "code": code, "message": message}]
    )


def edited_plan(plan: dict[str, Any] | str | None) -> Any:
    """The plan document of an edit (an object, or YAML/JSON text); 422 on ``plan`` otherwise."""

    if plan is None:
        raise field_error("plan", "required", "This action needs the plan.")
    if not isinstance(plan, str):
        return plan
    try:
        document = parse_plan_text(plan)
    except PlanSyntaxError as exc:
        raise field_error("plan", "syntax", f"The plan is not valid YAML or JSON: {exc}") from exc
    problem = storable_problem(document)
    if problem:
        raise field_error(
            "plan", "syntax", f"The plan holds a value that cannot be stored: {problem}"
        )
    return document

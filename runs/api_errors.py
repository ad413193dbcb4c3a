"""The API's error shape and the exception endpoints raise to produce it.

Every 4xx body is ``{"detail": str, "code": str, "fields": [...] | null}``;
``plannerweb/api.py`` maps each exception class to it once.
"""

from __future__ import annotations

from typing import Any

from ninja import Schema


class FieldErrorOut(Schema):
    """One problem with one input field (``field`` is a dotted path such as ``plan.steps[0].action``)."""

    field: str
    code: str
    message: str


class ErrorOut(Schema):
    detail: str
    code: str
    fields: list[FieldErrorOut] | None = None


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

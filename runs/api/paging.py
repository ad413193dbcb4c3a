"""Offset pages, the same for every list endpoint: ``limit`` and ``offset`` in, a page out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from ninja import Field, Query, Schema

MAX_PAGE = 200
MAX_OFFSET = 10**9


def limit_param(default: int) -> Any:
    """The ``limit`` query parameter, ``default`` when left out, at most ``MAX_PAGE``."""
    return Query(default, ge=1, le=MAX_PAGE)


OFFSET = Query(0, ge=0, le=MAX_OFFSET)


class PageOut(Schema):
    """A page of a list; subclasses add their typed ``items``."""

    total: int = Field(description="Items matching the filters, across every page.")
    limit: int
    offset: int


def offset_page(
    rows: QuerySet[Any], *, limit: int, offset: int, items: Sequence[Any] | None = None
) -> dict[str, Any]:
    """The page of ``rows`` at ``offset`` (``items`` when the caller built it), with the total."""
    page = list(rows[offset : offset + limit]) if items is None else items
    return {"items": page, "total": rows.count(), "limit": limit, "offset": offset}

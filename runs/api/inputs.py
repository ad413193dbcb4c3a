"""What every API input shares: unknown keys and values a database cannot store are refused."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from ninja import Field, Schema
from pydantic import ConfigDict, model_validator
from pydantic_core import PydanticCustomError

from runs.execution.budgets import BUDGET_FIELDS, budget_overrides

MAX_ID = 2**63 - 1  # the largest key SQLite and PostgreSQL bigint hold


def storable_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored (NUL, lone surrogates, NaN/Infinity), or None."""
    found = _unstorable(value)
    return f"{found[0] or 'value'}: {found[1]}" if found else None


def _unstorable(value: Any) -> tuple[str, str] | None:
    """(path, reason) of the first value a database cannot store, or None."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return path, "text may not contain NUL characters"
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return path, "text may not contain lone surrogates"
        elif isinstance(item, float) and not math.isfinite(item):
            return path, f"{item} is not a finite number"
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, path))
                stack.append((sub, f"{path}.{key}" if path else str(key)))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{path}[{i}]") for i, sub in enumerate(item))
    return None


class In(Schema):
    """Base of every input: unknown keys and values a database cannot store are refused."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        found = _unstorable(data)
        if found:
            raise PydanticCustomError(
                "unstorable", "{reason}", {"path": found[0], "reason": found[1]}
            )
        return data


class DecisionIn(In):
    """What a reviewer's decision carries besides its kind: the checklist, a reason, an edit."""

    checklist: list[int] = Field(
        default_factory=list,
        max_length=1000,
        description="Indexes of the checklist sentences ticked (every one, but to reject or abort).",
    )
    reason: str = Field("", max_length=10_000, description="Why; required to reject or abort.")
    plan: dict[str, Any] | str | None = Field(
        None, description="The edited plan (object, or YAML/JSON text); only with `edit`."
    )


class BudgetsIn(In):
    """Per-task budget limits; each left out keeps what applies (the task's, else the default)."""

    budget_max_steps: int | None = Field(None, ge=1, le=1_000_000)
    budget_max_tokens: int | None = Field(None, ge=1, le=2_000_000_000)
    budget_max_cost: Decimal | None = Field(None, ge=0, max_digits=12, decimal_places=6)
    budget_max_wall_seconds: int | None = Field(None, ge=1, le=2_000_000_000)

    def budgets(self) -> dict[str, Any]:
        """The budget limits given."""
        return budget_overrides(self.model_dump(include=set(BUDGET_FIELDS)))

"""What every API input shares: strict types; unknown keys and unstorable values are refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ninja import Field, Schema
from ninja.schema import DjangoGetter
from pydantic import ConfigDict, GetJsonSchemaHandler, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

from runs.execution.budgets import BUDGET_FIELDS, budget_overrides
from runs.textdata import unstorable

MAX_ID = 2**63 - 1  # the largest key SQLite and PostgreSQL bigint hold


# What every free-text field's schema says of it: the server refuses NUL and lone surrogates.
STORABLE_TEXT = "^[^\\u0000\\ud800-\\udfff]*$"


def storable_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored (``runs.textdata.unstorable``), or None."""
    found = unstorable(value)
    return f"{found[0] or 'value'}: {found[1]}" if found else None


def _text_pattern(schema: dict[str, Any]) -> None:
    """Say in a string property's schema (or its ``anyOf`` arms) that NUL is refused."""
    for arm in [schema, *schema.get("anyOf", [])]:
        if arm.get("type") == "string" and not {"pattern", "enum", "const", "format"} & arm.keys():
            arm["pattern"] = STORABLE_TEXT


class In(Schema):
    """Base of every input: strict types, no unknown keys, no value a database cannot store.

    Strict: ``0`` is no boolean and ``"5"`` no number, as the schema says. Each
    free-text field's schema carries ``STORABLE_TEXT``; values inside open objects
    (plans, configs) are held to the same rule by ``runs.textdata.unstorable``.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        # ninja hands query and form data over wrapped; a body arrives as a dict.
        values = data._obj if isinstance(data, DjangoGetter) else data
        found = unstorable(values) if isinstance(values, dict | list) else None
        if found:
            raise PydanticCustomError(
                "unstorable", "{reason}", {"path": found[0], "reason": found[1]}
            )
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        resolved = handler.resolve_ref_schema(schema)
        for prop in resolved.get("properties", {}).values():
            _text_pattern(prop)
        return schema


class QueryIn(In):
    """Query-string filters: their values arrive as text, so types are converted (not strict)."""

    model_config = ConfigDict(extra="forbid", strict=False)


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
    # Not strict: JSON numbers arrive as floats, which strict mode refuses for a Decimal.
    budget_max_cost: Decimal | None = Field(
        None, ge=0, max_digits=12, decimal_places=6, strict=False
    )
    budget_max_wall_seconds: int | None = Field(None, ge=1, le=2_000_000_000)

    def budgets(self) -> dict[str, Any]:
        """The budget limits given."""
        return budget_overrides(self.model_dump(include=set(BUDGET_FIELDS)))

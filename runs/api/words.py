"""API endpoint: map steps written in words to tools, for the operator to confirm.

It parses, checks the role, calls the mapping, returns a schema; nothing is stored.
"""

from __future__ import annotations

from typing import Annotated, Literal

from django.http import HttpRequest
from ninja import Field, Router, Schema

from runs.api.auth import role_auth
from runs.api.errors import ERRORS, ApiError, ErrorOut, field_error
from runs.api.inputs import In
from runs.lifecycle.words import WordsPlannerUnavailable, WordsPlannerUnreachable, words_map
from runs.permissions import is_operator
from runs.planning.options import PlannerOptionsError
from runs.planning.words import MAX_STEPS, steps_in_words

words_router = Router(tags=["plans"], auth=role_auth(is_operator, "map steps to tools"))


StepsText = Annotated[str, Field(max_length=20_000)]
StepLines = Annotated[list[Annotated[str, Field(max_length=2000)]], Field(max_length=MAX_STEPS)]


class WordsIn(In):
    steps: StepsText | StepLines = Field(
        description='A numbered or bulleted list ("1. Back up prod.db"), or a list of lines.'
    )
    goal: str = Field("", max_length=2000, description="The plan's goal (default: the first step).")
    planner: Literal["offline", "openai", "anthropic", "compatible"] = Field(
        "offline",
        description="Who maps the lines: offline (by tool descriptions, no model call) or a "
        "configured model provider (one call, recorded with its tokens and cost).",
    )
    model: str = Field("", max_length=100, description="The provider's model (default: its own).")


class StepInWordsOut(Schema):
    number: int
    text: str
    tool: str | None = Field(description="The tool it maps to; null when it maps to none.")
    params: dict[str, object]
    similarity: float = Field(description="Offline: how close the tool's description is (0-1).")
    why: str = Field(description="Why it maps to no tool (empty when it maps).")


class WordsOut(Schema):
    ok: bool = Field(description="Every step maps to a tool.")
    plan: dict[str, object] | None = Field(
        description="The proposed plan (steps in the order written), to confirm and submit."
    )
    steps: list[StepInWordsOut]
    planner: str = Field(description='Who mapped it: "offline", or the model ("openai/gpt-4.1").')
    reason: str = Field(description="Why no line maps when the model's whole answer was unusable.")


@words_router.post(
    "/from-words",
    response={200: WordsOut, **ERRORS, 503: ErrorOut},
    summary="Map steps written in words to tools (nothing is stored or run)",
)
def plan_from_words(request: HttpRequest, payload: WordsIn) -> WordsOut:
    """200 with each step's tool or why it has none; 422 when ``steps`` is not a list of steps
    or the chosen model is not configured here (saying what to set); 503 when the model's
    server cannot be reached (``planner_unreachable``, with the address tried)."""
    if isinstance(payload.steps, str):
        lines = steps_in_words(payload.steps)
        if lines is None:
            raise field_error(
                "steps", "not_a_list", 'Write one step a line, as "1. ..." or "- ...".'
            )
    else:
        lines = [line.strip() for line in payload.steps if line.strip()]
        if not lines:
            raise field_error("steps", "not_a_list", "Give at least one step.")
    if len(lines) > MAX_STEPS:
        raise field_error("steps", "too_many", f"At most {MAX_STEPS} steps.")
    try:
        mapping = words_map(
            lines=lines, goal=payload.goal.strip(), planner=payload.planner, model=payload.model
        )
    except WordsPlannerUnavailable as exc:
        raise ApiError(
            422,
            "planner_unavailable",
            str(exc),
            fields=[{"field": "planner", "code": "unavailable", "message": exc.missing}],
        ) from None
    except WordsPlannerUnreachable as exc:
        reached = f"no answer from {exc.address}" if exc.address else "no answer"
        raise ApiError(
            503,
            "planner_unreachable",
            str(exc),
            fields=[{"field": "planner", "code": "unreachable", "message": reached}],
        ) from None
    except PlannerOptionsError as exc:
        raise field_error(exc.field or "planner", "invalid", str(exc)) from None
    return WordsOut(
        ok=mapping.ok,
        plan=mapping.document,
        steps=[StepInWordsOut(**s.as_dict()) for s in mapping.steps],
        planner=mapping.planner,
        reason=mapping.reason,
    )

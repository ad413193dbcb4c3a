"""Steps written in words mapped to tools by a language model, checked line by line.

The model gets the numbered lines and the enabled tools (descriptions and parameter
schemas) and answers, per line, the tool and its params, or that no tool fits and why.
One call and no repair round: the operator reads the proposal and confirms it, so a
line the model got wrong is shown as failed, with why, rather than asked again. Its
answer is checked before anything is shown:

1. the answer must be JSON of ``WordsAnswer``'s shape (pydantic), and not huge;
2. it must answer every line once, by number;
3. each tool must be an enabled tool of the registry, and its params must satisfy that
   tool's parameters schema (no step references: the steps run in the order written).

A failure of 1 or 2 fails every line with the same reason; a failure of 3 only its line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runs.planning.attempts import CallRecord, PlanOutcome, ask_model, syntax_problem
from runs.planning.options import PlannerOptions
from runs.planning.params import ParamsSchemaError, params_problems
from runs.planning.prompt import ToolInfo
from runs.planning.providers.base import Provider
from runs.planning.validation.messages import suggest
from runs.planning.words import MAX_STEPS, StepInWords, WordsMapping, proposal

# An answer longer than this is refused unread: a hundred lines of tool calls fit many times over.
MAX_ANSWER_CHARS = 200_000
_WHY_CHARS = 500

SYSTEM = """You map an operator's steps, written in words, to the tools of an agent.
Each numbered line is one step; the steps run in the order written, one tool call each.
For every line answer its number, the one tool that does it and that tool's params (they
must satisfy the tool's parameters schema, with the values the line states), or, when no
tool fits or the line leaves out a value the tool needs, "tool": null and in "why" the
reason in one sentence. Never invent a tool or a value. Answer every line, in order, with
one JSON object that follows the given schema."""


class LineAnswer(BaseModel):
    """The model's answer for one line: a tool and params, or no tool and why."""

    model_config = ConfigDict(extra="ignore")

    number: int
    tool: str | None = Field(None, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    why: str = Field("", max_length=5000)


class WordsAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    steps: list[LineAnswer] = Field(max_length=MAX_STEPS)


def answer_json_schema() -> dict[str, Any]:
    """The structured-output schema the provider is given (kept plain for every provider)."""
    line = {
        "type": "object",
        "properties": {
            "number": {"type": "integer", "description": "The line's number."},
            "tool": {"type": ["string", "null"], "description": "The tool; null if none fits."},
            "params": {"type": "object", "description": "The tool's params."},
            "why": {"type": "string", "description": "Why no tool fits (empty when one does)."},
        },
        "required": ["number", "tool", "params", "why"],
    }
    return {
        "type": "object",
        "properties": {"steps": {"type": "array", "items": line}},
        "required": ["steps"],
    }


def words_prompt(steps: Sequence[str], tools: Sequence[ToolInfo], goal: str) -> tuple[str, str]:
    """The system text (rules and tools) and the user message (the numbered lines)."""
    catalogue = ["Tools:"]
    for tool in tools:
        catalogue.append(f"- {tool.name}: {tool.description}")
        catalogue.append(f"  parameters: {json.dumps(tool.parameters, sort_keys=True)}")
    if not tools:
        catalogue.append("- (none: no tool is enabled, so no line can map)")
    lines = [f"{number}. {text}" for number, text in enumerate(steps, 1)]
    head = [f"Goal: {goal}", ""] if goal else []
    user = "\n".join([*head, f"Steps ({len(steps)}):", *lines])
    return SYSTEM + "\n\n" + "\n".join(catalogue), user


def map_steps_with_model(
    steps: Sequence[str],
    tools: Sequence[ToolInfo],
    provider: Provider,
    options: PlannerOptions,
    *,
    goal: str = "",
) -> tuple[WordsMapping, list[CallRecord]]:
    """Each line's tool and params as the model answers them, checked; and the one call made."""
    model = options.model or provider.default_model
    label = f"{provider.name}/{model}"
    system, user = words_prompt(steps, tools, goal)
    holder = PlanOutcome(ok=False, planner=label, mode="words")
    reply = ask_model(
        provider,
        holder,
        label=label,
        model=model,
        system=system,
        messages=[{"role": "user", "content": user}],
        schema=answer_json_schema(),
        schema_name="step_mapping",
        options=options,
        purpose="words",
        attempt=1,
    )
    if reply is None:
        return _all_failed(steps, holder.reason, label, holder.failure), holder.calls
    reason, answers = _read_answer(reply.text, reply.data, len(steps), label)
    if answers is None:
        return _all_failed(steps, reason, label), holder.calls
    by_name = {t.name: t for t in tools}
    mapped = [_checked(n, text, answers[n], by_name) for n, text in enumerate(steps, 1)]
    return proposal(mapped, steps, goal=goal, planner=label), holder.calls


def _read_answer(
    text: str, data: Any, count: int, label: str
) -> tuple[str, dict[int, LineAnswer] | None]:
    """The answer per line number, or why the answer as a whole is unusable."""
    if len(text) > MAX_ANSWER_CHARS:
        return f"{label}'s answer is too large ({len(text)} characters)", None
    if data is None:
        return f"{label}'s answer is not JSON: {syntax_problem(text)}", None
    try:
        answer = WordsAnswer.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(answer)"
        return f"{label}'s answer does not have the expected shape: {where}: {first['msg']}", None
    numbers = [a.number for a in answer.steps]
    if len(numbers) != count:
        return f"{label} answered for {len(numbers)} line(s), not the {count} given", None
    if sorted(numbers) != list(range(1, count + 1)):
        return f"{label}'s line numbers are not 1 to {count}, each once", None
    return "", {a.number: a for a in answer.steps}


def _checked(number: int, text: str, answer: LineAnswer, tools: dict[str, ToolInfo]) -> StepInWords:
    """One line as mapped, or as failed with why (no tool, an unknown tool, bad params)."""
    if not answer.tool:
        why = answer.why.strip()[:_WHY_CHARS] or "the model found no tool for it"
        return StepInWords(number, text, why=f"no tool fits: {why}")
    tool = tools.get(answer.tool)
    if tool is None:
        hint = suggest(answer.tool, list(tools))
        name = answer.tool[:80]
        return StepInWords(number, text, why=f"the model named {name!r}, not an enabled tool{hint}")
    try:
        problems = params_problems(tool.parameters, answer.params, allow_references=False)
    except ParamsSchemaError as exc:
        return StepInWords(number, text, why=f"{tool.name}'s parameters schema is broken: {exc}")
    if problems:
        said = "; ".join(f"{p.path or 'params'}: {p.message}" for p in problems[:3])
        return StepInWords(
            number, text, why=f"{tool.name} fits, but its params are invalid: {said}"
        )
    return StepInWords(number, text, tool.name, answer.params)


def _all_failed(steps: Sequence[str], reason: str, planner: str, failure: str = "") -> WordsMapping:
    failed = [StepInWords(n, text, why=reason) for n, text in enumerate(steps, 1)]
    return WordsMapping(failed, None, planner=planner, reason=reason, failure=failure)

"""Clarifying questions: a planner that is unsure asks the operator instead of guessing.

The model's answer schema gains two properties, ``ask`` and ``options``: an answer
holding ``ask`` (and no steps) is a question, not a plan. Only offered while the
run has questions left (``PLANNERWEB_MAX_QUESTIONS``); the answers so far travel in
the task message.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from runs.planning.schema import plan_json_schema

MAX_QUESTION_CHARS = 1000
MAX_OPTIONS = 10
MAX_OPTION_CHARS = 200

ASK_RULE = (
    "- If the task leaves out something you must know to plan safely (which environment, "
    'which target), answer instead with {"ask": "<one short question>", "options": '
    '["<choice>", ...]} (options optional) and nothing else; the operator\'s answer comes back. '
    "Ask only when a wrong guess could do harm."
)


@dataclass(frozen=True)
class Question:
    text: str
    options: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.text, "options": list(self.options)}


def ask_json_schema(answer: dict[str, Any] | None = None) -> dict[str, Any]:
    """An answer's JSON Schema (the plan's by default), widened so it may be a question."""
    schema = copy.deepcopy(answer if answer is not None else plan_json_schema())
    schema.setdefault("properties", {})
    schema["properties"]["ask"] = {
        "type": "string",
        "maxLength": MAX_QUESTION_CHARS,
        "description": "A question for the operator, instead of a plan (then give no steps).",
    }
    schema["properties"]["options"] = {
        "type": "array",
        "items": {"type": "string", "maxLength": MAX_OPTION_CHARS},
        "maxItems": MAX_OPTIONS,
        "description": "The answers to choose from, when the question has a few.",
    }
    schema["required"] = [r for r in schema.get("required", []) if r != "steps"]
    return schema


def parse_question(data: Any) -> Question | None:
    """The question in a model's answer, or None when the answer is (meant as) a plan."""
    if not isinstance(data, dict):
        return None
    text = data.get("ask")
    if not isinstance(text, str) or not text.strip() or data.get("steps") or data.get("tool"):
        return None
    raw = data.get("options")
    options = [
        o.strip()[:MAX_OPTION_CHARS]
        for o in (raw if isinstance(raw, list) else [])
        if isinstance(o, str) and o.strip()
    ][:MAX_OPTIONS]
    return Question(text.strip()[:MAX_QUESTION_CHARS], options)


def clarification_lines(answers: list[tuple[str, str]]) -> str:
    """The questions asked so far and their answers, for the task message."""
    return "Answers to your earlier questions:\n" + "\n".join(
        f"- Q: {q}\n  A: {a}" for q, a in answers
    )


def take_question(outcome: Any, label: str, data: Any) -> bool:
    """Put the question in ``data`` on the planning ``outcome``; whether there was one."""
    question = parse_question(data)
    if question is None:
        return False
    outcome.question = question.as_dict()
    outcome.reason = f"{label} asked: {question.text}"
    return True

"""Steps written in words ("1. Back up the database", "2. Run the migration"...) mapped to tools.

Operators often write what to do as a numbered list rather than a plan. Offline,
each line is matched to one tool by its description (the BM25 index of
``runs.planning.retrieval``) and its parameters are read from the line
(``providers.playbook.direct.fill_params``); the steps run in the order written.
The result is a proposal shown for confirmation, never run as is: a line no tool
matches, or whose tool needs a value the line leaves out, is named with why. A model
can map the same lines instead (``runs.planning.words_model``), into the same shape.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from django.conf import settings

from runs.planning.prompt import ToolInfo, load_tools
from runs.planning.providers.playbook.choice import tool_text
from runs.planning.providers.playbook.direct import fill_params
from runs.planning.retrieval import Document, Index

_ITEM = re.compile(r"^\s*(?:(?:step\s*)?\d{1,3}\s*[.):]|[-*•])\s+(?P<text>\S.*?)\s*$", re.I)
_YAML_KEY = re.compile(r"^[\"']?[A-Za-z_][\w-]*[\"']?\s*:(\s|$)")
MAX_STEPS = 100


@dataclass(frozen=True)
class StepInWords:
    number: int
    text: str
    tool: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    similarity: float = 0.0
    why: str = ""  # set when the line maps to no tool

    def as_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "text": self.text,
            "tool": self.tool,
            "params": self.params,
            "similarity": self.similarity,
            "why": self.why,
        }


@dataclass(frozen=True)
class WordsMapping:
    steps: list[StepInWords]
    document: dict[str, Any] | None  # the proposed plan, when every line maps
    planner: str = "offline"  # who mapped it: "offline", or the model ("openai/gpt-4.1-mini")
    reason: str = ""  # why no line maps, when the whole answer was unusable
    failure: str = ""  # the model call's failure kind when it failed as a whole ("connection"...)

    @property
    def ok(self) -> bool:
        return self.document is not None

    @property
    def unmapped(self) -> list[StepInWords]:
        return [s for s in self.steps if s.tool is None]


def steps_in_words(text: str) -> list[str] | None:
    """The lines of a numbered or bulleted list, or None when ``text`` is not one.

    Every non-blank line must be an item ("1. ...", "2) ...", "- ...", "Step 3: ...");
    a line that is not is taken as the continuation of the item before it.
    """
    items: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _ITEM.match(line)
        if match and (_YAML_KEY.match(match.group("text")) or match.group("text")[0] in "{["):
            return None  # "- id: backup", "- {action: noop}": a plan written as YAML, not words
        if match:
            items.append(match.group("text"))
        elif items and line[:1].isspace():
            items[-1] += " " + line.strip()
        else:
            return None
    return items or None


def map_steps(
    steps: Sequence[str], tools: Sequence[ToolInfo], *, threshold: float, goal: str = ""
) -> WordsMapping:
    """Each line's tool and parameters, in order; a plan only when every line maps."""
    index = Index([Document(t.name, tool_text(t), t) for t in tools])
    mapped = [_map_one(number, text, index, threshold) for number, text in enumerate(steps, 1)]
    return proposal(mapped, steps, goal=goal)


def proposal(
    mapped: list[StepInWords], steps: Sequence[str], *, goal: str, planner: str = "offline"
) -> WordsMapping:
    """The mapping, with the plan (one step a line, in the order written) when every line maps."""
    if any(s.tool is None for s in mapped) or not mapped:
        return WordsMapping(mapped, None, planner=planner)
    plan_steps = []
    for s in mapped:
        step: dict[str, Any] = {
            "id": f"step_{s.number}",
            "action": s.tool,
            "params": s.params,
            "description": s.text[:2000],
        }
        if s.number > 1:
            step["depends_on"] = [f"step_{s.number - 1}"]
        plan_steps.append(step)
    document = {"goal": goal or steps[0][:200], "steps": plan_steps}
    return WordsMapping(mapped, document, planner=planner)


def _map_one(number: int, text: str, index: Index, threshold: float) -> StepInWords:
    hits = index.search(text, limit=5)
    if not hits:
        return StepInWords(number, text, why="no tool's description shares a word with it")
    # The tool holding most of the line's words, then by score (as the offline planner does).
    best = sorted(hits, key=lambda h: (-len(h.matched), -h.score))[0]
    if best.similarity < threshold:
        return StepInWords(
            number,
            text,
            similarity=best.similarity,
            why=f"no tool is close enough (closest: {best.document.key} at "
            f"{best.similarity:.2f}, below {threshold:g})",
        )
    tool: ToolInfo = best.document.payload
    filled = fill_params(text, tool.parameters)
    if filled.missing:
        return StepInWords(
            number,
            text,
            similarity=best.similarity,
            why=f"{tool.name} fits, but the line does not say its {', '.join(filled.missing)}",
        )
    return StepInWords(number, text, tool.name, filled.params, best.similarity)


def map_text(text: str, *, goal: str = "") -> WordsMapping | None:
    """``text`` mapped over the enabled tools, or None when it is not a list of steps."""
    lines = steps_in_words(text)
    if lines is None:
        return None
    threshold = settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY
    return map_steps(lines[:MAX_STEPS], load_tools(), threshold=threshold, goal=goal)


def plan_text(document: dict[str, Any]) -> str:
    """The proposed plan as YAML, in the order a person writes one (goal, then steps)."""
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))

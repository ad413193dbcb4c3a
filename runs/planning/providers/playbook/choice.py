"""What the offline planner does with a task: reuse a stored plan, call one tool, or ask.

One BM25 index (``runs.planning.retrieval``) holds the stored plans and the tools:
1. Rank both for the task; below ``threshold`` similarity nothing matches.
2. The tool holding most of the task's words, when the task states its required
   parameters and no stored plan scores higher with a word the tool lacks: one
   direct call.
3. That tool lacks a value the task leaves out: the best stored plan above the
   threshold when it holds a word of the task the tool lacks ("migrate the
   database" names no migration for ``run_migration``; the migration playbook
   fits), else no match, naming the tool and what the task leaves out.
4. Otherwise the best stored plan above the threshold, or no match.

A time reference ("before the migration") says when, not what: it is left out of the
ranking, so "Take a backup of prod.db before the migration" is a backup, not a migration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from runs.planning.prompt import ToolInfo
from runs.planning.providers.playbook.direct import Filled, fill_params
from runs.planning.providers.playbook.matching import Case
from runs.planning.retrieval import Document, Hit, Index
from runs.planning.retrieval.text import requested


@dataclass(frozen=True)
class Choice:
    """``kind`` is "playbook", "tool" or "none"; ``closest`` explains a "none"."""

    kind: str
    hit: Hit | None = None
    filled: Filled | None = None
    closest: str = ""

    @property
    def case(self) -> Case:
        assert self.hit is not None and isinstance(self.hit.document.payload, Case)
        return self.hit.document.payload

    @property
    def tool(self) -> ToolInfo:
        assert self.hit is not None and isinstance(self.hit.document.payload, ToolInfo)
        return self.hit.document.payload


def case_text(case: Case) -> str:
    """A stored plan as found: its task, then its steps' tools and descriptions."""
    parts = [case.text]
    document: Any = case.document
    steps = document.get("steps") if isinstance(document, dict) else None
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, dict):
            parts.append(str(step.get("action") or step.get("tool") or ""))
            parts.append(str(step.get("description") or ""))
    return " ".join(p for p in parts if p)


def tool_text(tool: ToolInfo) -> str:
    # The name twice: it is the tool's most telling words (a light field boost); then the
    # values its enum parameters take ("staging", "smoke"): what the tool works on.
    name = tool.name.replace("_", " ")
    properties = tool.parameters.get("properties") or {}
    choices = [
        str(v) for p in properties.values() if isinstance(p, dict) for v in p.get("enum") or []
    ]
    return " ".join([name, name, tool.description, *choices])


def build_index(cases: Sequence[Case], tools: Sequence[ToolInfo]) -> Index:
    documents = [Document(c.name, case_text(c), c) for c in cases]
    documents += [Document(f"tool:{t.name}", tool_text(t), t) for t in tools]
    return Index(documents)


def choose(
    text: str,
    cases: Sequence[Case],
    tools: Sequence[ToolInfo],
    *,
    threshold: float,
    direct: bool = True,
) -> Choice:
    """The offline planner's decision for ``text`` (see the module docstring)."""
    # Ranked on what the task asks, its time references left out; values come from all of it.
    hits = build_index(cases, tools if direct else []).search(requested(text), limit=10)
    if not hits:
        return Choice("none", closest="nothing shares a word with the task")
    if hits[0].similarity < threshold:
        return Choice("none", hit=hits[0], closest=_closest(hits[0], threshold))
    case_hit = next((h for h in hits if isinstance(h.document.payload, Case)), None)
    case_hit = case_hit if case_hit and case_hit.similarity >= threshold else None
    tool_hits = [h for h in hits if isinstance(h.document.payload, ToolInfo)]
    # The tool holding most of the task's words first, then by score ("undo the staging
    # deploy": rollback_deploy holds all three words, deploy two of them).
    tool_hits.sort(key=lambda h: (-len(h.matched), -h.score))
    tool_hit = tool_hits[0] if tool_hits else None
    if tool_hit is not None and tool_hit.similarity >= threshold:
        tool: ToolInfo = tool_hit.document.payload
        filled = fill_params(text, tool.parameters)
        # A stored plan is longer, so it scores higher on the same words: a tool the task
        # fully states wins unless the plan holds a word of the task the tool lacks.
        if not filled.missing and (
            case_hit is None
            or tool_hit.score >= case_hit.score
            or case_hit.matched <= tool_hit.matched
        ):
            return Choice("tool", hit=tool_hit, filled=filled)
        if filled.missing and (case_hit is None or case_hit.matched <= tool_hit.matched):
            # The plan says nothing of the task the tool does not: the tool is what was
            # asked for, and the task leaves out what it needs.
            lacking = ", ".join(filled.missing)
            return Choice(
                "none",
                hit=tool_hit,
                filled=filled,
                closest=f"closest: the tool {tool.name}, but the task does not say its {lacking}",
            )
    if case_hit is not None:
        return Choice("playbook", hit=case_hit)
    return Choice("none", hit=hits[0], closest=_closest(hits[0], threshold))


def _closest(hit: Hit, threshold: float) -> str:
    return f"closest: {hit.document.key} at {hit.similarity:.2f}, below {threshold:g}"

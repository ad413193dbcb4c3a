"""The playbook planner: reuse a stored plan that worked for a similar task (case-based reuse).

Candidates are the ``Playbook`` rows (curated, seeded from the demo plans) and
the plans of recently succeeded runs, so every success becomes reusable without
anyone curating it. Matching and substitution live in ``matching``; this module
turns the best match into a ``PlanOutcome`` or, when nothing is similar enough,
an outcome that asks the operator for a hand-written plan instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from runs.models import Playbook, Run, RunStatus
from runs.planning.attempts import NO_MATCH as NO_MATCH_FAILURE
from runs.planning.attempts import PlanOutcome, check_plan, plan_confidence
from runs.planning.prompt import PlanningContext
from runs.planning.providers.playbook.matching import Case, best_match, substitute
from runs.tools.base import ToolSpec

NO_MATCH = "no playbook matches: submit a hand-written plan"
_RECENT_RUNS = 200


def load_cases() -> list[Case]:
    """Playbook rows first, then the plans of the latest succeeded runs."""

    cases = [Case(f"playbook:{p.name}", p.task_text, p.document) for p in Playbook.objects.all()]
    runs = (
        Run.objects.filter(status=RunStatus.SUCCEEDED, current_plan__is_valid=True)
        .exclude(current_plan__document=None)
        .select_related("task", "current_plan")
        .order_by("-finished_at")[:_RECENT_RUNS]
    )
    for run in runs:
        text = f"{run.task.title} {run.task.description}".strip()
        plan = run.current_plan
        assert plan is not None  # the query keeps only runs with a valid plan
        cases.append(Case(f"run:{run.pk}", text, plan.document))
    return cases


def plan_from_playbook(
    context: PlanningContext,
    *,
    tools: Mapping[str, ToolSpec],
    cases: list[Case] | None = None,
) -> PlanOutcome:
    """The most similar stored plan, its values swapped for the task's, with a confidence."""
    text = f"{context.task} {context.description}".strip()
    cases = load_cases() if cases is None else cases
    match = best_match(text, cases)
    threshold = settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY
    if match is None or match.similarity < threshold:
        closest = (
            f" (closest: {match.case.name} at {match.similarity:.2f}, below {threshold:g})"
            if match
            else " (no stored plans)"
        )
        return PlanOutcome(
            ok=False,
            planner="playbook",
            mode=context.mode,
            reason=NO_MATCH + closest,
            failure=NO_MATCH_FAILURE,
        )
    # The operator's answers to earlier questions name values the task left out.
    answered = " ".join([text, *(a for _, a in context.clarifications)])
    document, report = substitute(match.case.document, match.case.text, answered)
    mode = "upfront" if context.mode == "auto" else context.mode
    if report.unfilled and context.may_ask:
        return _ask_for(match.case.name, report.unfilled[0], mode)
    validated = check_plan(document, tools=tools, mode=mode)
    # Unfilled slots (a value the stored plan has but the task does not name) cost confidence.
    confidence = round(match.similarity * (0.8 ** len(report.unfilled)), 3)
    step_confidence = plan_confidence(validated)
    if step_confidence is not None:
        confidence = round(min(confidence, step_confidence), 3)
    detail = f"matched {match.case.name} (similarity {match.similarity:.2f})"
    if report.substituted:
        detail += "; substituted " + ", ".join(f"{a} → {b}" for a, b in report.substituted)
    if report.unfilled:
        detail += "; kept stored values " + ", ".join(report.unfilled)
    if not validated.is_valid:
        first = validated.problems[0].message if validated.problems else "invalid"
        return PlanOutcome(
            ok=False,
            planner=f"playbook:{match.case.name}",
            mode=mode,
            document=document,
            validated=validated,
            confidence=confidence,
            reason=f"{detail}, but the adapted plan is invalid: {first}; {NO_MATCH}",
        )
    if context.mode == "auto" and validated.document is not None:
        mode = "direct" if len(validated.document.steps) == 1 else "upfront"
    return PlanOutcome(
        ok=True,
        planner=match.case.name,
        mode=mode,
        document=document,
        validated=validated,
        confidence=confidence,
        reason=detail,
        substitutions=[c.as_dict() for c in report.changes],
    )


def _ask_for(case: str, stored: str, mode: str) -> PlanOutcome:
    """Ask for the value the task leaves out instead of reusing the stored plan's own."""
    question = (
        f"The stored plan {case} uses {stored!r}, and the task names nothing in its place. "
        f"Which value should this run use? (Answer {stored!r} to keep it.)"
    )
    return PlanOutcome(
        ok=False,
        planner=case,
        mode=mode,
        reason=f"matched {case}, but the task does not say what replaces {stored!r}",
        question={"question": question, "options": [stored]},
    )


def playbook_from_plan(*, name: str, task_text: str, document: Any, source_run: Any = None) -> Any:
    """Store (or update) a playbook; seed_demo and operators use it."""

    playbook, _ = Playbook.objects.update_or_create(
        name=name,
        defaults={"task_text": task_text, "document": document, "source_run": source_run},
    )
    return playbook

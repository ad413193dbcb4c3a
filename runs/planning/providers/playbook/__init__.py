"""The playbook planner: the offline planner, reusing stored plans or calling one tool.

Candidates are the ``Playbook`` rows (seeded from the demo plans, or saved from a
run by an operator or reviewer) and the plans of runs that succeeded after a
reviewer approved them; a run that merely succeeded is not reused, since nobody
vouched for it (an injected or lucky plan must not become a template). Which one
fits, or which single tool answers the task, is decided in ``choice``; this module
turns the decision into a ``PlanOutcome``, or, when nothing is similar enough,
an outcome that asks the operator for a hand-written plan instead of guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings

from reviews.models import ReviewKind, ReviewStatus
from runs.models import Playbook, Run, RunStatus
from runs.planning.attempts import NO_MATCH as NO_MATCH_FAILURE
from runs.planning.attempts import PlanOutcome, check_plan, plan_confidence
from runs.planning.prompt import PlanningContext
from runs.planning.providers.playbook.choice import Choice, choose
from runs.planning.providers.playbook.matching import Case, substitute
from runs.tools.base import ToolSpec

NO_MATCH = "no playbook matches: submit a hand-written plan"
_RECENT_RUNS = 200


def load_cases() -> list[Case]:
    """Playbook rows first, then the latest runs that succeeded with a reviewer-approved plan."""

    cases = [Case(f"playbook:{p.name}", p.task_text, p.document) for p in Playbook.objects.all()]
    runs = (
        Run.objects.filter(
            status=RunStatus.SUCCEEDED,
            current_plan__is_valid=True,
            review_items__kind=ReviewKind.PLAN_APPROVAL,
            review_items__status__in=[ReviewStatus.APPROVED, ReviewStatus.EDITED],
        )
        .exclude(current_plan__document=None)
        .select_related("task", "current_plan")
        .distinct()
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
    """A stored plan adapted to the task, or one direct tool call, with a confidence."""
    text = f"{context.task} {context.description}".strip()
    cases = load_cases() if cases is None else cases
    threshold = settings.PLANNERWEB_PLAYBOOK_MIN_SIMILARITY
    usable = [t for t in context.tools if t.name in tools]
    choice = choose(
        text, cases, usable, threshold=threshold, direct=context.mode in ("auto", "direct")
    )
    if choice.kind == "tool":
        return _direct_call(context, choice, tools=tools)
    if choice.kind == "none":
        closest = f" ({choice.closest})" if cases or usable else " (no stored plans)"
        return PlanOutcome(
            ok=False,
            planner="playbook",
            mode=context.mode,
            reason=NO_MATCH + closest,
            failure=NO_MATCH_FAILURE,
        )
    return adapt_case(context, choice, text, tools=tools)


def _direct_call(
    context: PlanningContext, choice: Choice, *, tools: Mapping[str, ToolSpec]
) -> PlanOutcome:
    """One step calling the matched tool with the parameters the task states."""
    assert choice.hit is not None and choice.filled is not None
    tool = choice.tool
    document = {
        "goal": context.task,
        "steps": [
            {
                "id": tool.name,
                "action": tool.name,
                "params": choice.filled.params,
                "description": tool.description[:200],
            }
        ],
    }
    validated = check_plan(document, tools=tools, mode="direct")
    stated = ", ".join(f"{k}={v!r}" for k, v in choice.filled.params.items())
    detail = f"direct call of {tool.name} (similarity {choice.hit.similarity:.2f})"
    detail += f"; from the task: {stated}" if stated else "; no parameters needed"
    if not validated.is_valid:
        first = validated.problems[0].message if validated.problems else "invalid"
        return PlanOutcome(
            ok=False,
            planner="playbook:direct",
            mode="direct",
            document=document,
            validated=validated,
            reason=f"{detail}, but the call is invalid: {first}; {NO_MATCH}",
            failure=NO_MATCH_FAILURE,
        )
    return PlanOutcome(
        ok=True,
        planner="playbook:direct",
        mode="direct",
        document=document,
        validated=validated,
        confidence=choice.hit.similarity,
        reason=detail,
    )


def adapt_case(
    context: PlanningContext, choice: Choice, text: str, *, tools: Mapping[str, ToolSpec]
) -> PlanOutcome:
    """The chosen stored plan with the task's values swapped in, validated, with a confidence."""
    assert choice.hit is not None
    case = choice.case
    similarity = choice.hit.similarity
    # The operator's answers to earlier questions name values the task left out.
    answered = " ".join([text, *(a for _, a in context.clarifications)])
    document, report = substitute(case.document, case.text, answered)
    mode = "upfront" if context.mode == "auto" else context.mode
    if report.unfilled and context.may_ask:
        return _ask_for(case.name, report.unfilled[0], mode)
    validated = check_plan(document, tools=tools, mode=mode)
    # Unfilled slots (a value the stored plan has but the task does not name) cost confidence.
    confidence = round(similarity * (0.8 ** len(report.unfilled)), 3)
    step_confidence = plan_confidence(validated)
    if step_confidence is not None:
        confidence = round(min(confidence, step_confidence), 3)
    detail = f"matched {case.name} (similarity {similarity:.2f})"
    if report.substituted:
        detail += "; substituted " + ", ".join(f"{a} → {b}" for a, b in report.substituted)
    if report.unfilled:
        detail += "; kept stored values " + ", ".join(report.unfilled)
    if not validated.is_valid:
        first = validated.problems[0].message if validated.problems else "invalid"
        return PlanOutcome(
            ok=False,
            planner=f"playbook:{case.name}",
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
        planner=case.name,
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

"""The playbook planner's replan: each failed step gives way to the fallback its plan declares.

No model is asked, so this works offline and answers the same way every time:
1. Take the failed version as written (``ReplanContext.plan``); finished steps
   are kept as they ran (never re-run), so they are left out here.
2. Every failed step must declare a ``fallback`` (another tool call); it takes the
   step's place under the same id and dependencies, so the steps after it run on.
   The fallback itself has no fallback: a second failure ends in the rollback.
3. The remaining steps and the rollback stay as they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runs.planning.attempts import PlanOutcome, check_plan, merge_kept, plan_confidence
from runs.planning.prompt import PlanningContext
from runs.planning.schema import normalize_plan
from runs.tools.base import ToolSpec

PLANNER = "playbook:fallback"


def _refuse(reason: str) -> PlanOutcome:
    return PlanOutcome(ok=False, planner=PLANNER, mode="upfront", reason=reason)


def _in_place_of(step: dict[str, Any], error: str) -> dict[str, Any]:
    """The failed step's fallback, under its id and dependencies."""
    fallback = step["fallback"]
    why = fallback.get("description") or f"fallback for {step['id']}"
    return {
        "id": step["id"],
        "action": fallback.get("action", fallback.get("tool")),
        "params": fallback.get("params", fallback.get("arguments", fallback.get("args", {}))),
        "depends_on": step.get("depends_on", []),
        "description": f"{why} (in place of {step.get('action', step.get('tool'))}: {error})"[
            :2000
        ],
    }


def replan_with_fallbacks(
    context: PlanningContext,
    *,
    tools: Mapping[str, ToolSpec],
    kept: list[dict[str, Any]],
) -> PlanOutcome:
    """A new version with each failed step replaced by its declared fallback (see the module)."""
    replan = context.replan
    plan = normalize_plan(replan.plan) if replan is not None and replan.plan is not None else None
    if replan is None or not isinstance(plan, dict) or not isinstance(plan.get("steps"), list):
        return _refuse("the playbook planner replans from the failed plan, and got none")
    errors = {str(f["id"]): str(f.get("error") or "failed") for f in replan.failed}
    finished = {k["id"] for k in kept}
    steps: list[Any] = []
    missing: list[str] = []
    for step in plan["steps"]:
        sid = str(step.get("id")) if isinstance(step, dict) else None
        if sid in finished:
            continue  # kept as it ran, in front (merge_kept)
        if sid in errors:
            if not isinstance(step.get("fallback"), dict):
                missing.append(sid)
                continue
            steps.append(_in_place_of(step, errors[sid]))
        else:
            steps.append(step)
    if missing or not errors:
        names = ", ".join(missing) or "none failed"
        return _refuse(
            f"no fallback declared for the failed step ({names}): the playbook planner "
            "only puts a step's hand-written fallback in its place"
        )
    document = merge_kept({**plan, "steps": steps}, kept)
    validated = check_plan(document, tools=tools, mode="upfront")
    replaced = ", ".join(errors)
    if not validated.is_valid:
        first = validated.problems[0].message if validated.problems else "invalid"
        return PlanOutcome(
            ok=False,
            planner=PLANNER,
            mode="upfront",
            document=document,
            validated=validated,
            reason=f"the fallback for {replaced} does not fit the plan: {first}",
        )
    return PlanOutcome(
        ok=True,
        planner=PLANNER,
        mode="upfront",
        document=document,
        validated=validated,
        confidence=plan_confidence(validated),
        reason=f"ran the declared fallback in place of {replaced}",
    )

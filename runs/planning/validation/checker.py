"""The plan checker: walks a plan once and collects every problem, with a run order when valid.

A plan is checked for shape (pydantic), size, unique ids, known and enabled
tools, params against each tool's JSON Schema, dependencies (missing, self,
cycles) and step-output references. Problems carry a path into the document
and a sentence naming the step and the tool, so an operator (or a planner's
repair round) can fix them all in one go.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from pydantic import ValidationError

from runs.planning.params import ParamsCheck, Predicate, params_check
from runs.planning.references import Reference, find_references
from runs.planning.schema import (
    STEP_ID_RE,
    UNDO_KEY_MAX,
    PlanDocument,
    PlanStep,
    RollbackStep,
    normalize_plan,
    undo_key,
)
from runs.planning.subplans import SUBPLAN, with_subplan
from runs.planning.validation.defaults import DefaultsFiller, document_with, raw_with
from runs.planning.validation.graphs import (
    Ancestors,
    shortest_cycle,
    strongly_connected,
    topological_order,
)
from runs.planning.validation.messages import (
    MAX_TOOLS_LISTED,
    describe_param_problem,
    get_key,
    json_kind,
    param_phrase,
    params_path,
    raw_len,
    rollback_label,
    salvage_rollback,
    salvage_steps,
    shape_problems,
    shorten,
    step_label,
    suggest,
)
from runs.planning.validation.problems import PlanProblem
from runs.textdata import unstorable_values
from runs.tools.base import ToolSpec
from runs.tools.locks import lock_template_problems, template_params
from runs.tools.registry import load_tool_specs

_UNKNOWN: Any = object()  # a cache miss, where None is a cached answer


def _any_params(params: Any) -> bool:
    return True


@dataclass(frozen=True)
class ValidatedPlan:
    """The outcome of ``validate_plan``; ``order`` is a run order of step ids when valid.

    ``document`` and ``submitted`` have the tools' parameter defaults filled in
    (``defaults``); ``submitted`` is the document as given otherwise (what a plan
    version stores), None when it was not an object or a list.
    """

    document: PlanDocument | None
    problems: list[PlanProblem]
    order: list[str]
    submitted: Any = None

    @property
    def is_valid(self) -> bool:
        return self.document is not None and not self.problems


def validate_with_registry(
    raw: Any, *, tools: Mapping[str, ToolSpec] | None = None
) -> ValidatedPlan:
    """``validate_plan`` against the tool registry (or ``tools``) and the deployment's step limit."""
    return validate_plan(
        raw,
        tools=load_tool_specs() if tools is None else tools,
        max_steps=settings.PLANNERWEB_MAX_PLAN_STEPS,
    )


def plan_size_problem(raw: Any) -> PlanProblem | None:
    """The deployment's step limit alone, counted without validating any step.

    Cheap on any size, so a caller can refuse a huge plan before diffing or checking it;
    the problem is the one ``validate_with_registry`` reports for the same plan.
    """
    count = raw_len(normalize_plan(raw), "steps") if isinstance(raw, dict | list) else 0
    max_steps = settings.PLANNERWEB_MAX_PLAN_STEPS
    return _too_many_steps(count, max_steps) if count > max_steps else None


def _too_many_steps(count: int, max_steps: int) -> PlanProblem:
    return PlanProblem(
        "steps",
        "too_many_steps",
        f"The plan has {count} steps, more than the limit of {max_steps}; "
        "split the work into smaller plans.",
    )


def validate_plan(raw: Any, *, tools: Mapping[str, ToolSpec], max_steps: int) -> ValidatedPlan:
    """Check ``raw`` (a parsed plan, object or list form) against ``tools``; never stops early.

    1. Validate the shape once for the whole document (the fast path). If that
       fails, report the shape errors and keep the steps that are individually
       well-formed, so the remaining checks still run on them.
    2. Fill in the parameter defaults of the steps' tools (``defaults``).
    3. Check sizes, ids, tools, params, dependencies and references per step.
    4. Order the steps (Kahn's algorithm) and name the steps of every cycle.
    """
    if not isinstance(raw, dict | list):
        return ValidatedPlan(
            None,
            [
                PlanProblem(
                    "",
                    "shape",
                    "A plan must be an object with a 'steps' list, or a list of steps; "
                    f"got {json_kind(raw)}.",
                )
            ],
            [],
        )
    tools = with_subplan(tools)
    stored = _unstorable_problems(raw)
    if stored:  # nothing else is checked: such values may break the checks themselves
        return ValidatedPlan(None, stored, [])
    problems: list[PlanProblem] = []
    document: PlanDocument | None
    known_ids: set[str] = set()
    try:
        document = PlanDocument.model_validate(raw)
    except ValidationError as exc:
        document = None
        normalized = normalize_plan(raw)
        problems.extend(shape_problems(exc, normalized))
        steps, known_ids = salvage_steps(normalized, exc)
        rollback = salvage_rollback(normalized, exc)
        raw_count = raw_len(normalized, "steps")
    else:
        steps = list(enumerate(document.steps))
        rollback = list(enumerate(document.rollback))
        raw_count = len(document.steps)

    if raw_count == 0 and isinstance(get_key(normalize_plan(raw), "steps"), list):
        problems.append(PlanProblem("steps", "empty", "The plan has no steps; add at least one."))
    if raw_count > max_steps:
        problems.append(_too_many_steps(raw_count, max_steps))
    filler = DefaultsFiller(tools)
    steps, filled_steps = filler.fill(steps)
    rollback, filled_rollback = filler.fill(rollback)
    document = document_with(document, filled_steps, filled_rollback)
    checker = _Checker(tools, problems)
    order = checker.check_steps(steps, known_ids)
    checker.check_undos(steps)
    checker.check_rollback(rollback, {s.id for _, s in steps} | known_ids)
    problems += _subplan_undo_problems(steps, rollback)
    return ValidatedPlan(
        document,
        problems,
        [] if problems else order,
        raw_with(raw, filled_steps, filled_rollback),
    )


def _subplan_undo_problems(
    steps: list[tuple[int, PlanStep]], rollback: list[tuple[int, RollbackStep]]
) -> list[PlanProblem]:
    """A rollback must be tool calls: a child run cannot be planned while a plan is undone."""
    found = [
        PlanProblem(
            f"steps[{i}].undo.action",
            "subplan_in_rollback",
            f"The undo of step '{s.id}' uses 'subplan'; an undo must call a tool.",
        )
        for i, s in steps
        if s.undo is not None and s.undo.action == SUBPLAN
    ]
    found += [
        PlanProblem(
            f"rollback[{i}].action",
            "subplan_in_rollback",
            f"Rollback step {i + 1} uses 'subplan'; a rollback step must call a tool.",
        )
        for i, r in rollback
        if r.action == SUBPLAN
    ]
    return found


MAX_STORAGE_PROBLEMS = 50  # of one plan; a model that wrote more has the gist from these


def _unstorable_problems(raw: Any) -> list[PlanProblem]:
    """A problem per value the database could not store (``runs.textdata.unstorable_values``)."""
    problems = []
    for path, reason in unstorable_values(raw):
        problems.append(
            PlanProblem(
                path.lstrip("."),
                "unstorable",
                f"{path or 'The plan'}: {reason}; the database cannot store such a value.",
            )
        )
        if len(problems) == MAX_STORAGE_PROBLEMS:
            break
    return problems


# -- the checks -----------------------------------------------------------------------
class _Checker:
    """Holds per-call state: the tool lookups and the compiled params checks they share."""

    def __init__(self, tools: Mapping[str, ToolSpec], problems: list[PlanProblem]) -> None:
        self.tools = tools
        self.problems = problems
        self._params: dict[str, ParamsCheck | None] = {}
        self._bad_schema_reported: set[str] = set()
        # Per tool name, without and with references allowed: a predicate that passes
        # good params of an enabled tool, or None when ``_check_tool`` must look closer.
        self._passes: tuple[dict[str, Predicate | None], dict[str, Predicate | None]] = ({}, {})

    def add(self, path: str, code: str, message: str) -> None:
        self.problems.append(PlanProblem(path, code, message))

    def check_steps(self, steps: list[tuple[int, PlanStep]], known_ids: set[str]) -> list[str]:
        """Per-step checks, then the graph; returns a topological order of step ids."""
        first: dict[str, int] = {}  # step id -> index into ``steps`` of its first occurrence
        owns: list[int] = []  # per step: ``first`` of its id (its own index unless a duplicate)
        for k, (i, step) in enumerate(steps):
            seen = first.setdefault(step.id, k)
            owns.append(seen)
            if seen != k:
                self.add(
                    f"steps[{i}].id",
                    "duplicate_id",
                    f"Step id '{step.id}' is used by both steps[{steps[seen][0]}] and steps[{i}]; "
                    "give each step its own id.",
                )
        all_ids = first.keys() | known_ids

        deps: list[list[int]] = []
        refs: list[list[Reference]] = []
        in_plan_order = True  # every dependency appears earlier: the plan order is a run order
        for k, (i, step) in enumerate(steps):
            params, depends_on = step.params, step.depends_on
            step_refs = find_references(params) if params else []
            refs.append(step_refs)
            self._check_tool("steps", i, step.id, step.action, params, bool(step_refs))
            if step.fallback is not None:
                self._check_fallback(i, step)
            if step.locks or self._tool_locks(step.action):
                label = step_label(step.id, step.action)
                self._check_locks(f"steps[{i}]", label, step.action, step.locks, params)
            if not depends_on:
                deps.append([])
                continue
            # A dependency listed twice stays twice: every use of ``deps`` below allows it.
            try:
                targets = [first[dep] for dep in depends_on]
            except KeyError:  # a missing step: the slow path reports it
                targets = self._check_dependencies(i, step, first, known_ids)
                top = max(targets, default=-1)
            else:
                # ``first`` is one-to-one, so the step's own index among its targets means
                # a dependency on itself; ``own <= k``, so mostly ``top < own`` rules it out.
                top, own = max(targets), owns[k]
                if top >= own and own in targets:
                    targets = self._check_dependencies(i, step, first, known_ids)
                    top = max(targets, default=-1)
            if top >= k:
                in_plan_order = False
            deps.append(targets)

        nodes = [k for k in range(len(steps)) if owns[k] == k]
        remaining: list[int]
        if in_plan_order:
            order, remaining = nodes, []
        else:
            order, remaining = topological_order(nodes, deps)
        if remaining:
            self._report_cycles(steps, deps, remaining)
        self._check_references(steps, deps, refs, first, all_ids, order)
        return [steps[k][1].id for k in order]

    def _check_dependencies(
        self, i: int, step: PlanStep, first: dict[str, int], known_ids: set[str]
    ) -> list[int]:
        """The slow path for a step with a bad dependency: report it, keep the good ones."""
        targets: list[int] = []
        for j, dep in enumerate(step.depends_on):
            if dep == step.id:
                self.add(
                    f"steps[{i}].depends_on[{j}]",
                    "self_dependency",
                    f"{step_label(step.id, step.action)} depends on itself; "
                    f"remove '{dep}' from its depends_on.",
                )
            elif dep in first:
                targets.append(first[dep])
            elif not STEP_ID_RE.fullmatch(dep):
                self.add(
                    f"steps[{i}].depends_on[{j}]",
                    "missing_dependency",
                    f"{step_label(step.id, step.action)} depends on '{shorten(dep)}', which cannot "
                    "be a step id (ids use letters, digits, '_' and '-', at most 100 "
                    "characters); use the id of a step in this plan.",
                )
            elif dep not in known_ids:  # known: a malformed step, already reported
                self.add(
                    f"steps[{i}].depends_on[{j}]",
                    "missing_dependency",
                    f"{step_label(step.id, step.action)} depends on '{dep}', "
                    f"which is not a step in this plan{suggest(dep, first)}.",
                )
        return targets

    def _check_fallback(self, i: int, step: PlanStep) -> None:
        """A fallback's tool and params, like a step's; its references are checked when it replaces the step."""
        fallback = step.fallback
        assert fallback is not None
        has_refs = bool(find_references(fallback.params)) if fallback.params else False
        self._check_tool(
            "steps",
            i,
            step.id,
            fallback.action,
            fallback.params,
            has_refs,
            where=f"steps[{i}].fallback",
            label=f"The fallback of step '{step.id}' (tool '{fallback.action}')",
        )

    def check_undos(self, steps: list[tuple[int, PlanStep]]) -> None:
        """Each step's own undo: a known tool, params that fit it, references to this step only."""
        ids = {s.id for _, s in steps}
        for i, step in steps:
            undo = step.undo
            if undo is None:
                continue
            where = f"steps[{i}].undo"
            label = f"The undo of {step_label(step.id, step.action)}"
            key = undo_key(step.id)
            if len(key) > UNDO_KEY_MAX or key in ids:
                self.add(
                    f"steps[{i}].id",
                    "bad_undo",
                    f"{label} would be named '{shorten(key)}', which "
                    + ("is another step's id" if key in ids else "is too long")
                    + f"; rename the step (an id with an undo has at most {UNDO_KEY_MAX - 5} "
                    "characters and no other step is called 'undo-<its id>').",
                )
            step_refs = find_references(undo.params) if undo.params else []
            self._check_tool(
                "steps",
                i,
                step.id,
                undo.action,
                undo.params,
                bool(step_refs),
                where=where,
                label=f"The undo of step '{step.id}' (tool '{undo.action}')",
            )
            for ref in step_refs:
                if ref.step == step.id:
                    continue
                self.add(
                    params_path(where, ref.location),
                    "bad_reference",
                    f"{label} {param_phrase(ref.location)} refers to {ref.expression}, but an "
                    f"undo may use only its own step's result ('steps.{step.id}.result').",
                )

    def check_rollback(self, rollback: list[tuple[int, RollbackStep]], ids: set[str]) -> None:
        for i, step in rollback:
            if step.undoes is not None and step.undoes not in ids:
                self.add(
                    f"rollback[{i}].undoes",
                    "missing_dependency",
                    f"{rollback_label(i, step.action)} undoes '{step.undoes}', which is not a "
                    f"step in this plan{suggest(step.undoes, ids)}.",
                )
            step_refs = find_references(step.params) if step.params else []
            self._check_tool("rollback", i, None, step.action, step.params, bool(step_refs))
            if step.locks or self._tool_locks(step.action):
                label = rollback_label(i, step.action)
                self._check_locks(f"rollback[{i}]", label, step.action, step.locks, step.params)
            for ref in step_refs:
                self.add(
                    params_path(f"rollback[{i}]", ref.location),
                    "bad_reference",
                    f"{rollback_label(i, step.action)} {param_phrase(ref.location)} refers to {ref.expression}, but "
                    "rollback steps cannot use step outputs: they run after a failure, when "
                    "those results may not exist.",
                )

    def _check_tool(
        self,
        section: str,
        index: int,
        step_id: str | None,
        action: str,
        params: dict[str, Any],
        has_refs: bool,
        *,
        where: str = "",
        label: str = "",
    ) -> None:
        """Tool exists, is enabled, and ``params`` fit its schema; messages built only on failure."""
        passes = self._passes[has_refs].get(action, _UNKNOWN)
        if passes is _UNKNOWN:
            passes = self._pass_check(action, has_refs)
        if passes is not None and passes(params):
            return
        spec = self.tools.get(action)
        where = where or f"{section}[{index}]"
        label = label or (
            step_label(step_id, action) if step_id is not None else rollback_label(index, action)
        )
        if spec is None:
            self.add(
                f"{where}.action",
                "unknown_tool",
                f"{label} uses the unknown tool '{action}'{self._tool_hint(action)}.",
            )
            return
        if not spec.enabled:
            self.add(
                f"{where}.action",
                "tool_disabled",
                f"{label} uses the tool '{action}', which is disabled; "
                "choose another tool or ask an admin to enable it.",
            )
        check = self._params_check(spec)
        if check is None:
            return
        if check.schema_error is not None:
            if action not in self._bad_schema_reported:
                self._bad_schema_reported.add(action)
                self.add(
                    f"{where}.params",
                    "bad_params",
                    f"{label}: the tool's parameters schema is itself invalid "
                    f"({shorten(check.schema_error)}); an admin must fix the tool.",
                )
            return
        for problem in check.problems(params, allow_references=has_refs):
            for path, message in describe_param_problem(problem):
                self.add(params_path(where, path), "bad_params", f"{label}: {message}")

    def _tool_locks(self, action: str) -> tuple[str, ...]:
        spec = self.tools.get(action)
        return spec.locks if spec is not None else ()

    def _check_locks(
        self, where: str, label: str, action: str, locks: list[str], params: dict[str, Any]
    ) -> None:
        """Each lock template is well formed and names params the step has (or defaults)."""
        spec = self.tools.get(action)
        properties = (spec.parameters_schema.get("properties") if spec is not None else None) or {}
        defaulted = {k for k, v in properties.items() if isinstance(v, dict) and "default" in v}
        own = [(f"{where}.locks[{j}]", t) for j, t in enumerate(locks)]
        inherited = [(f"{where}.action", t) for t in self._tool_locks(action)]
        for path, template in own + inherited:
            problems = lock_template_problems(template)
            for problem in problems:
                self.add(path, "bad_lock", f"{label}: {problem}")
            if problems:
                continue
            for name in template_params(template):
                if name not in params and name not in defaulted:
                    self.add(
                        path,
                        "bad_lock",
                        f"{label}: lock {template!r} needs the parameter '{name}', "
                        "which the step does not set.",
                    )

    def _tool_hint(self, action: str) -> str:
        enabled = [name for name, spec in self.tools.items() if spec.enabled]
        hint = suggest(action, enabled)
        if hint or not enabled or len(enabled) > MAX_TOOLS_LISTED:
            return hint
        return f" (available tools: {', '.join(sorted(enabled))})"

    def _pass_check(self, action: str, has_refs: bool) -> Predicate | None:
        """The fast path of ``_check_tool``, compiled once per tool and reference mode."""
        spec = self.tools.get(action)
        passes: Predicate | None = None
        if spec is not None and spec.enabled:
            check = self._params_check(spec)
            if check is None:
                passes = _any_params  # the tool takes no schema
            elif check.schema_error is None:
                passes = check.predicate(allow_references=has_refs)
        self._passes[has_refs][action] = passes
        return passes

    def _params_check(self, spec: ToolSpec) -> ParamsCheck | None:
        try:
            return self._params[spec.name]
        except KeyError:
            check = params_check(spec.parameters_schema)
            self._params[spec.name] = check
            return check

    def _report_cycles(
        self, steps: list[tuple[int, PlanStep]], deps: list[list[int]], remaining: list[int]
    ) -> None:
        """Name one cycle per strongly connected knot; steps merely downstream are skipped."""
        for component in strongly_connected(remaining, deps):
            if len(component) < 2:
                continue
            cycle = shortest_cycle(min(component), component, deps)
            names = [steps[k][1].id for k in cycle]
            others = sorted(set(component) - set(cycle))
            extra = ""
            if others:
                names_others = ", ".join(repr(steps[k][1].id) for k in others)
                verb = "is" if len(others) == 1 else "are"
                noun = "step" if len(others) == 1 else "steps"
                extra = f" ({noun} {names_others} {verb} caught in the same knot of dependencies)"
            self.add(
                f"steps[{steps[cycle[0]][0]}].depends_on",
                "cycle",
                f"Steps {' → '.join([*names, names[0]])} form a cycle: each waits for the one "
                f"before it, so none can start{extra}. Remove one of these dependencies.",
            )

    def _check_references(
        self,
        steps: list[tuple[int, PlanStep]],
        deps: list[list[int]],
        refs: list[list[Reference]],
        first: dict[str, int],
        all_ids: set[str],
        order: list[int],
    ) -> None:
        if not any(refs):
            return
        ancestors = Ancestors(deps, order, refs, first)
        for k, (i, step) in enumerate(steps):
            for ref in refs[k]:
                if ref.step == step.id:
                    why = ", its own result, which cannot exist yet."
                elif ref.step not in all_ids:
                    why = f", but there is no step '{ref.step}'{suggest(ref.step, first)}."
                elif ref.step in first and not ancestors.has(k, first[ref.step]):
                    why = (
                        f", but '{step.id}' does not depend on '{ref.step}' (directly or "
                        "through other steps), so it could run before that result exists; "
                        f"add '{ref.step}' to its depends_on."
                    )
                else:
                    continue
                self.add(
                    params_path(f"steps[{i}]", ref.location),
                    "bad_reference",
                    f"{step_label(step.id, step.action)} {param_phrase(ref.location)} "
                    f"refers to {ref.expression}{why}",
                )

"""Plan validation: every problem in a submitted plan at once, plus a run order.

A plan is checked for shape (pydantic), size, unique ids, known and enabled
tools, params against each tool's JSON Schema, dependencies (missing, self,
cycles) and step-output references. Problems carry a path into the document
and a sentence naming the step and the tool, so an operator (or a planner's
repair round) can fix them all in one go.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from pydantic import ValidationError

from runs.graph import dependents_of
from runs.planning.params import ParamProblem, ParamsCheck, Predicate, params_check
from runs.planning.references import Reference, find_references, format_location
from runs.planning.schema import (
    STEP_ID_RE,
    PlanDocument,
    PlanStep,
    RollbackStep,
    normalize_plan,
)
from runs.tools.base import ToolSpec
from runs.tools.registry import load_tool_specs

_MAX_MESSAGE = 300
_MAX_TOOLS_LISTED = 15
_UNKNOWN: Any = object()  # a cache miss, where None is a cached answer


def _any_params(params: Any) -> bool:
    return True


@dataclass(frozen=True)
class PlanProblem:
    """One thing wrong with a plan: where (``steps[2].params.db``), what kind, and what to do."""

    path: str
    code: str
    message: str


@dataclass(frozen=True)
class ValidatedPlan:
    """The outcome of ``validate_plan``; ``order`` is a run order of step ids when valid."""

    document: PlanDocument | None
    problems: list[PlanProblem]
    order: list[str]

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


def validate_plan(raw: Any, *, tools: Mapping[str, ToolSpec], max_steps: int) -> ValidatedPlan:
    """Check ``raw`` (a parsed plan, object or list form) against ``tools``; never stops early.

    1. Validate the shape once for the whole document (the fast path). If that
       fails, report the shape errors and keep the steps that are individually
       well-formed, so the remaining checks still run on them.
    2. Check sizes, ids, tools, params, dependencies and references per step.
    3. Order the steps (Kahn's algorithm) and name the steps of every cycle.
    """
    if not isinstance(raw, dict | list):
        return ValidatedPlan(
            None,
            [
                PlanProblem(
                    "",
                    "shape",
                    "A plan must be an object with a 'steps' list, or a list of steps; "
                    f"got {_json_kind(raw)}.",
                )
            ],
            [],
        )
    problems: list[PlanProblem] = []
    document: PlanDocument | None
    known_ids: set[str] = set()
    try:
        document = PlanDocument.model_validate(raw)
    except ValidationError as exc:
        document = None
        normalized = normalize_plan(raw)
        problems.extend(_shape_problems(exc, normalized))
        steps, known_ids = _salvage_steps(normalized, exc)
        rollback = _salvage_rollback(normalized, exc)
        raw_count = _raw_len(normalized, "steps")
    else:
        steps = list(enumerate(document.steps))
        rollback = list(enumerate(document.rollback))
        raw_count = len(document.steps)

    if raw_count == 0 and isinstance(_get(normalize_plan(raw), "steps"), list):
        problems.append(PlanProblem("steps", "empty", "The plan has no steps; add at least one."))
    if raw_count > max_steps:
        problems.append(
            PlanProblem(
                "steps",
                "too_many_steps",
                f"The plan has {raw_count} steps, more than the limit of {max_steps}; "
                "split the work into smaller plans.",
            )
        )
    checker = _Checker(tools, problems)
    order = checker.check_steps(steps, known_ids)
    checker.check_rollback(rollback)
    return ValidatedPlan(document, problems, [] if problems else order)


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
            order, remaining = _kahn(nodes, deps)
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
                    f"{_label(step.id, step.action)} depends on itself; "
                    f"remove '{dep}' from its depends_on.",
                )
            elif dep in first:
                targets.append(first[dep])
            elif not STEP_ID_RE.fullmatch(dep):
                self.add(
                    f"steps[{i}].depends_on[{j}]",
                    "missing_dependency",
                    f"{_label(step.id, step.action)} depends on '{_short(dep)}', which cannot "
                    "be a step id (ids use letters, digits, '_' and '-', at most 100 "
                    "characters); use the id of a step in this plan.",
                )
            elif dep not in known_ids:  # known: a malformed step, already reported
                self.add(
                    f"steps[{i}].depends_on[{j}]",
                    "missing_dependency",
                    f"{_label(step.id, step.action)} depends on '{dep}', "
                    f"which is not a step in this plan{_suggest(dep, first)}.",
                )
        return targets

    def check_rollback(self, rollback: list[tuple[int, RollbackStep]]) -> None:
        for i, step in rollback:
            step_refs = find_references(step.params) if step.params else []
            self._check_tool("rollback", i, None, step.action, step.params, bool(step_refs))
            for ref in step_refs:
                self.add(
                    _params_path(f"rollback[{i}]", ref.location),
                    "bad_reference",
                    f"{_rollback_label(i, step.action)} {_param_phrase(ref.location)} refers to {ref.expression}, but "
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
    ) -> None:
        """Tool exists, is enabled, and ``params`` fit its schema; messages built only on failure."""
        passes = self._passes[has_refs].get(action, _UNKNOWN)
        if passes is _UNKNOWN:
            passes = self._pass_check(action, has_refs)
        if passes is not None and passes(params):
            return
        spec = self.tools.get(action)
        where = f"{section}[{index}]"
        label = _label(step_id, action) if step_id is not None else _rollback_label(index, action)
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
                    f"({_short(check.schema_error)}); an admin must fix the tool.",
                )
            return
        for problem in check.problems(params, allow_references=has_refs):
            for path, message in _describe_param_problem(problem):
                self.add(_params_path(where, path), "bad_params", f"{label}: {message}")

    def _tool_hint(self, action: str) -> str:
        enabled = [name for name, spec in self.tools.items() if spec.enabled]
        hint = _suggest(action, enabled)
        if hint or not enabled or len(enabled) > _MAX_TOOLS_LISTED:
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
        for component in _strongly_connected(remaining, deps):
            if len(component) < 2:
                continue
            cycle = _shortest_cycle(min(component), component, deps)
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
        ancestors = _Ancestors(deps, order, refs, first)
        for k, (i, step) in enumerate(steps):
            for ref in refs[k]:
                if ref.step == step.id:
                    why = ", its own result, which cannot exist yet."
                elif ref.step not in all_ids:
                    why = f", but there is no step '{ref.step}'{_suggest(ref.step, first)}."
                elif ref.step in first and not ancestors.has(k, first[ref.step]):
                    why = (
                        f", but '{step.id}' does not depend on '{ref.step}' (directly or "
                        "through other steps), so it could run before that result exists; "
                        f"add '{ref.step}' to its depends_on."
                    )
                else:
                    continue
                self.add(
                    _params_path(f"steps[{i}]", ref.location),
                    "bad_reference",
                    f"{_label(step.id, step.action)} {_param_phrase(ref.location)} "
                    f"refers to {ref.expression}{why}",
                )


# -- graph helpers --------------------------------------------------------------------
def _kahn(nodes: list[int], deps: list[list[int]]) -> tuple[list[int], list[int]]:
    """Topological order preferring plan position; returns (order, nodes left in or after cycles)."""
    indegree = {k: len(deps[k]) for k in nodes}
    dependents = dependents_of({k: deps[k] for k in nodes})
    ready = [k for k in nodes if indegree[k] == 0]  # ascending, so already a heap
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for c in dependents[k]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(ready, c)
    remaining = [k for k in nodes if indegree[k] > 0]
    return order, remaining


def _strongly_connected(nodes: list[int], deps: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative, on the subgraph ``nodes`` (edges: step -> its dependencies)."""
    inside = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    components: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[int, Iterator[int]]] = [(root, iter(deps[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in inside:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(deps[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    components.sort(key=lambda c: c[0])
    return components


def _shortest_cycle(start: int, component: list[int], deps: list[list[int]]) -> list[int]:
    """The shortest cycle through ``start``, in run direction: each step feeds the next."""
    inside = set(component)
    # Breadth-first along dependencies until some ``node`` depends on ``start``. Walking
    # back up the parents from ``node`` lists the steps in run direction, ending at start.
    parent: dict[int, int] = {start: start}
    queue = [start]
    for node in queue:
        for d in deps[node]:
            if d == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *path[:-1]]
            if d in inside and d not in parent:
                parent[d] = node
                queue.append(d)
    return [start]  # unreachable for a real component of size >= 2


class _Ancestors:
    """Answers "does step k (transitively) depend on step t?" for referenced steps t only.

    Bit sets over the referenced steps, filled in run order: O(E) big-int ORs whose
    width is the number of distinct referenced steps, usually tiny. Steps outside
    the order (in or after a cycle, or duplicates) fall back to a search.
    """

    def __init__(
        self,
        deps: list[list[int]],
        order: list[int],
        refs: list[list[Reference]],
        first: dict[str, int],
    ) -> None:
        self.deps = deps
        targets = {first[r.step] for step_refs in refs for r in step_refs if r.step in first}
        self.bit = {t: 1 << n for n, t in enumerate(targets)}
        self.sets: dict[int, int] = {}
        for k in order:
            acc = 0
            for d in deps[k]:
                acc |= self.sets[d] | self.bit.get(d, 0)
            self.sets[k] = acc

    def has(self, k: int, target: int) -> bool:
        if k in self.sets:
            return bool(self.sets[k] & self.bit[target])
        seen = {k}
        queue = [k]
        for node in queue:
            for d in self.deps[node]:
                if d == target:
                    return True
                if d not in seen:
                    seen.add(d)
                    queue.append(d)
        return False


# -- shape errors from pydantic ------------------------------------------------------------
_STEP_KEYS = ("id", "action", "params", "depends_on", "description", "confidence")
_ROLLBACK_KEYS = ("action", "params", "description")
_PLAN_KEYS = ("goal", "steps", "rollback")
_ALIASES = {"tool": "action", "args": "params", "arguments": "params"}


def _shape_problems(exc: ValidationError, normalized: Any) -> list[PlanProblem]:
    return [
        PlanProblem(format_location(error["loc"]), "shape", _shape_message(error, normalized))
        for error in exc.errors(include_url=False)
    ]


def _shape_message(error: Any, normalized: Any) -> str:
    loc: tuple[str | int, ...] = error["loc"]
    kind: str = error["type"]
    value = error.get("input")
    in_step = len(loc) >= 2 and loc[0] in ("steps", "rollback") and isinstance(loc[1], int)
    if in_step:
        section, index = str(loc[0]), int(loc[1])
        item = _get_index(_get(normalized, section), index)
        subject = _raw_label(section, index, item)
        allowed = _ROLLBACK_KEYS if section == "rollback" else _STEP_KEYS
        rest = loc[2:]
    else:
        item, subject, allowed, rest = normalized, "The plan", _PLAN_KEYS, loc
    field = rest[0] if rest else None

    if kind == "missing":
        if loc == ("steps",):
            return "The plan has no 'steps' list; add one."
        return (
            f"{subject} is missing '{field}'{' (the tool to call)' if field == 'action' else ''}."
        )
    if kind == "extra_forbidden":
        key = str(loc[-1])
        canonical = _ALIASES.get(key) if in_step else None
        if canonical is not None and isinstance(item, dict):
            given = [k for k in item if _ALIASES.get(k, k) == canonical]
            return f"{subject} gives {' and '.join(repr(k) for k in given)}; keep only one."
        hint = _suggest(key, allowed) or f" (allowed keys: {', '.join(allowed)})"
        return f"{subject} has an unknown key '{key}'{hint}."
    where = format_location(rest) if rest else ""
    what = f"'{where}'" if where else "it"
    if kind == "string_pattern_mismatch":
        return (
            f"{subject}: {value!r} is not a valid step id; use letters, digits, '_' and '-' "
            "(not starting with '-', at most 100 characters)."
        )
    if kind in ("model_type", "model_attributes_type"):
        return f"{subject} must be an object with 'id', 'action' and 'params', got {_json_kind(value)}."
    if kind == "dict_type":
        return f"{subject}: {what} must be an object of names to values, got {_json_kind(value)}."
    if kind == "list_type":
        return f"{subject}: {what} must be a list, got {_json_kind(value)}."
    if kind == "string_type":
        return f"{subject}: {what} must be a string, got {_json_kind(value)}."
    if field == "confidence":
        return f"{subject}: 'confidence' must be a number from 0 to 1, got {value!r}."
    return f"{subject}: {what}: {error['msg']}."


def _raw_label(section: str, index: int, item: Any) -> str:
    if section == "rollback":
        return f"Rollback step {index + 1}"
    step_id = item.get("id") if isinstance(item, dict) else None
    action = item.get("action", item.get("tool")) if isinstance(item, dict) else None
    name = f"Step '{step_id}'" if isinstance(step_id, str | int) else f"Step {index + 1}"
    return f"{name} (tool '{action}')" if isinstance(action, str) else name


def _bad_indexes(exc: ValidationError, section: str) -> set[int] | None:
    """Indexes of malformed items in ``section``; None when the section itself is unusable."""
    bad: set[int] = set()
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if not loc or loc[0] != section:
            continue
        if len(loc) < 2 or not isinstance(loc[1], int):
            return None
        bad.add(loc[1])
    return bad


def _salvage_steps(
    normalized: Any, exc: ValidationError
) -> tuple[list[tuple[int, PlanStep]], set[str]]:
    """The well-formed steps, plus the ids of malformed ones (so they are not 'missing')."""
    items = _get(normalized, "steps")
    bad = _bad_indexes(exc, "steps")
    if not isinstance(items, list) or bad is None:
        return [], set()
    steps: list[tuple[int, PlanStep]] = []
    known: set[str] = set()
    for i, item in enumerate(items):
        if i in bad:
            raw_id = item.get("id") if isinstance(item, dict) else None
            if isinstance(raw_id, str | int) and not isinstance(raw_id, bool):
                known.add(str(raw_id))
            continue
        steps.append((i, PlanStep.model_validate(item)))
    return steps, known


def _salvage_rollback(normalized: Any, exc: ValidationError) -> list[tuple[int, RollbackStep]]:
    items = _get(normalized, "rollback")
    bad = _bad_indexes(exc, "rollback")
    if not isinstance(items, list) or bad is None:
        return []
    return [(i, RollbackStep.model_validate(item)) for i, item in enumerate(items) if i not in bad]


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _get_index(value: Any, index: int) -> Any:
    return value[index] if isinstance(value, list) and 0 <= index < len(value) else None


def _raw_len(normalized: Any, key: str) -> int:
    items = _get(normalized, key)
    return len(items) if isinstance(items, list) else 0


# -- params problems as sentences ---------------------------------------------------------
def _describe_param_problem(problem: ParamProblem) -> list[tuple[str, str]]:
    """(location inside params, message) for one schema violation, in an operator's words."""
    trail = problem.location
    if problem.missing is not None:
        full = format_location([*trail, problem.missing])
        return [(full, f"the required param '{full}' is missing.")]
    if problem.unexpected:
        known = problem.accepted
        out = []
        for extra in problem.unexpected:
            full = format_location([*trail, extra])
            hint = _suggest(extra, known) or (
                f" (it accepts {', '.join(known)})" if known else " (it accepts none)"
            )
            out.append((full, f"the tool has no param '{full}'{hint}."))
        return out
    where = problem.path
    subject = f"param '{where}'" if where else "params"
    return [(where, f"{subject}: {_short(problem.message)}.")]


# -- message helpers -------------------------------------------------------------------
def _label(step_id: str, action: str) -> str:
    return f"Step '{step_id}' (tool '{action}')"


def _rollback_label(index: int, action: str) -> str:
    return f"Rollback step {index + 1} (tool '{action}')"


def _param_phrase(location: str) -> str:
    return f"param '{location}'" if location else "params"


def _params_path(where: str, location: str) -> str:
    if not location:
        return f"{where}.params"
    return f"{where}.params{location}" if location.startswith("[") else f"{where}.params.{location}"


def _suggest(name: str, candidates: Sequence[str] | Mapping[str, Any] | Any) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(f"'{c}'" for c in close) + "?)"


def _short(text: str) -> str:
    text = text.rstrip(".")
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__

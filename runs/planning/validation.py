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
import json
import numbers
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from runs.execution.references import (
    Reference,
    find_references,
    format_location,
    is_whole_reference,
)
from runs.planning.schema import PlanDocument, PlanStep, RollbackStep, normalize_plan
from runs.tools.base import ToolSpec

_MAX_MESSAGE = 300
_MAX_TOOLS_LISTED = 15


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
        self._params: dict[str, _ParamsCheck | None] = {}
        self._bad_schema_reported: set[str] = set()

    def add(self, path: str, code: str, message: str) -> None:
        self.problems.append(PlanProblem(path, code, message))

    def check_steps(self, steps: list[tuple[int, PlanStep]], known_ids: set[str]) -> list[str]:
        """Per-step checks, then the graph; returns a topological order of step ids."""
        first: dict[str, int] = {}  # step id -> index into ``steps`` of its first occurrence
        for k, (i, step) in enumerate(steps):
            seen = first.setdefault(step.id, k)
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
        position = first.get
        for k, (i, step) in enumerate(steps):
            step_refs = find_references(step.params) if step.params else []
            refs.append(step_refs)
            self._check_tool("steps", i, step.id, step.action, step.params, bool(step_refs))
            if not step.depends_on:
                deps.append([])
                continue
            found = [position(dep) for dep in step.depends_on]
            if None in found or step.id in step.depends_on:
                targets = self._check_dependencies(i, step, first, known_ids)
            else:
                targets = cast(list[int], found)
            if len(targets) > 1:
                targets = list(dict.fromkeys(targets))
            if in_plan_order and targets and max(targets) >= k:
                in_plan_order = False
            deps.append(targets)

        nodes = [k for k in range(len(steps)) if first[steps[k][1].id] == k]
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
        spec = self.tools.get(action)
        if spec is not None and spec.enabled:
            check = self._params_check(spec)
            if check is None or (check.schema_error is None and check.is_valid(params, has_refs)):
                return
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
        for path, message in check.problems(params, has_refs):
            self.add(_params_path(where, path), "bad_params", f"{label}: {message}")

    def _tool_hint(self, action: str) -> str:
        enabled = [name for name, spec in self.tools.items() if spec.enabled]
        hint = _suggest(action, enabled)
        if hint or not enabled or len(enabled) > _MAX_TOOLS_LISTED:
            return hint
        return f" (available tools: {', '.join(sorted(enabled))})"

    def _params_check(self, spec: ToolSpec) -> _ParamsCheck | None:
        try:
            return self._params[spec.name]
        except KeyError:
            check = _params_check_for(spec.parameters_schema)
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
    dependents: dict[int, list[int]] = {k: [] for k in nodes}
    for k in nodes:
        for d in deps[k]:
            dependents[d].append(k)
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


# -- params against the tool's JSON Schema -------------------------------------------------
Predicate = Callable[[Any], bool]


def _skip_whole_references(
    keyword: Callable[..., Any],
) -> Callable[..., Iterator[jsonschema.ValidationError]]:
    def check(
        validator: Any, value: Any, instance: Any, schema: Any
    ) -> Iterator[jsonschema.ValidationError]:
        if is_whole_reference(instance):
            return
        errors = keyword(validator, value, instance, schema)
        if errors:
            yield from errors

    return check


# A whole reference ("{{ steps.a.result.n }}") stands for a value known only at run
# time: it satisfies any (non-false) schema here and is checked again after resolution.
_ReferenceAwareValidator = jsonschema.validators.extend(
    Draft202012Validator,
    {name: _skip_whole_references(fn) for name, fn in Draft202012Validator.VALIDATORS.items()},
)


class _ParamsCheck:
    """One tool schema, compiled once: a fast predicate where possible, jsonschema for messages."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema_error: str | None = None
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            self.schema_error = exc.message
            return
        self.schema = schema
        self.validator = Draft202012Validator(schema)
        self.fast = _compile(schema, refs=False)
        self._ref_validator: Any = None
        self._fast_refs: Predicate | None = None

    def is_valid(self, params: dict[str, Any], has_refs: bool) -> bool:
        if not has_refs:
            fast, validator = self.fast, self.validator
        else:
            fast, validator = self._with_refs()
        return fast(params) if fast is not None else bool(validator.is_valid(params))

    def problems(self, params: dict[str, Any], has_refs: bool) -> list[tuple[str, str]]:
        """(location inside params, message) for each schema violation; [] when valid."""
        validator = self._with_refs()[1] if has_refs else self.validator
        out: list[tuple[str, str]] = []
        for error in validator.iter_errors(params):
            out.extend(_describe_schema_error(error))
        return out

    def _with_refs(self) -> tuple[Predicate | None, Any]:
        if self._ref_validator is None:
            self._fast_refs = _compile(self.schema, refs=True)
            self._ref_validator = _ReferenceAwareValidator(self.schema)
        return self._fast_refs, self._ref_validator


def _describe_schema_error(error: jsonschema.ValidationError) -> list[tuple[str, str]]:
    trail = list(error.absolute_path)
    where = format_location(trail)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        names = [
            name
            for name in error.validator_value
            if name not in instance and error.message == f"{name!r} is a required property"
        ]
        if names:
            full = format_location([*trail, names[0]])
            return [(full, f"the required param '{full}' is missing.")]
    if (
        error.validator == "additionalProperties"
        and error.validator_value is False
        and isinstance(instance, dict)
        and isinstance(error.schema, dict)
        and "patternProperties" not in error.schema
    ):
        known = error.schema.get("properties", {})
        out = []
        for extra in (k for k in instance if k not in known):
            full = format_location([*trail, extra])
            hint = _suggest(extra, known) or (
                f" (it accepts {', '.join(known)})" if known else " (it accepts none)"
            )
            out.append((full, f"the tool has no param '{full}'{hint}."))
        if out:
            return out
    subject = f"param '{where}'" if where else "params"
    return [(where, f"{subject}: {_short(error.message)}.")]


_CHECKS: dict[str, _ParamsCheck | None] = {}
_CHECKS_MAX = 512


def _params_check_for(schema: Any) -> _ParamsCheck | None:
    """The shared compiled check for ``schema``; None when there is nothing to check."""
    if not schema:
        return None
    key = json.dumps(schema, sort_keys=True, default=str)
    try:
        return _CHECKS[key]
    except KeyError:
        pass
    if len(_CHECKS) >= _CHECKS_MAX:  # tool schemas are few; this only guards against churn
        _CHECKS.clear()
    # Compile a private copy, so a caller mutating its dict cannot desync it from its key.
    check = _CHECKS[key] = _ParamsCheck(json.loads(key))
    return check


# The fast path: jsonschema costs ~10 µs per call even for a two-keyword schema, which
# is most of a 1000-step validation. Schemas made only of the keywords below are
# compiled to plain predicates with exactly jsonschema's semantics; any other keyword
# falls back to jsonschema. A predicate only answers "valid?"; on "no", jsonschema
# writes the messages. So a predicate must never accept what jsonschema rejects; the
# tests compare the two on a grid of schemas and values.
_FAST_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "format",  # not asserted: our validators have no format checker
    }
)
_KEYWORDS = frozenset(Draft202012Validator.VALIDATORS)


def _is_number(x: Any) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _is_integer(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    return isinstance(x, int) or (isinstance(x, float) and x.is_integer())


_TYPES: dict[str, Predicate] = {
    "string": lambda x: isinstance(x, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
}


def _always(x: Any) -> bool:
    return True


def _never(x: Any) -> bool:
    return False


def _compile(schema: Any, *, refs: bool) -> Predicate | None:
    """A predicate equivalent to ``Draft202012Validator(schema).is_valid``, or None."""
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        return None
    if any(k in _KEYWORDS and k not in _FAST_KEYWORDS for k in schema):
        return None
    checks: list[Predicate] = []

    def sub(s: Any) -> Predicate:
        compiled = _compile(s, refs=refs)
        if compiled is None:
            raise _Unsupported
        return compiled

    try:
        checks.extend(_compile_keywords(schema, sub))
    except _Unsupported:
        return None
    base = _always if not checks else checks[0] if len(checks) == 1 else _all_of(tuple(checks))
    if refs:
        return _or_whole_reference(base)
    return base


def _all_of(checks: tuple[Predicate, ...]) -> Predicate:
    def check(x: Any) -> bool:
        # Plain loops: a generator inside all() costs more than the checks themselves.
        for one in checks:  # noqa: SIM110
            if not one(x):
                return False
        return True

    return check


def _or_whole_reference(inner: Predicate) -> Predicate:
    return lambda x: is_whole_reference(x) or inner(x)


class _Unsupported(Exception):
    pass


def _compile_keywords(schema: dict[str, Any], sub: Callable[[Any], Predicate]) -> list[Predicate]:
    checks: list[Predicate] = []
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not all(isinstance(n, str) and n in _TYPES for n in names):
            raise _Unsupported
        preds = tuple(_TYPES[n] for n in names)
        checks.append(preds[0] if len(preds) == 1 else lambda x: any(p(x) for p in preds))
    if "enum" in schema:
        values = schema["enum"]
        # jsonschema's equality keeps True != 1; for strings it is plain ==.
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise _Unsupported
        allowed = frozenset(values)
        checks.append(lambda x: isinstance(x, str) and x in allowed)
    if "const" in schema:
        const = schema["const"]
        if not isinstance(const, str):
            raise _Unsupported
        checks.append(lambda x: isinstance(x, str) and x == const)
    for keyword, compare in (
        ("minimum", lambda x, m: x >= m),
        ("maximum", lambda x, m: x <= m),
        ("exclusiveMinimum", lambda x, m: x > m),
        ("exclusiveMaximum", lambda x, m: x < m),
    ):
        if keyword in schema:
            checks.append(_number_check(schema[keyword], compare))
    for keyword, kind, at_least in (
        ("minLength", str, True),
        ("maxLength", str, False),
        ("minItems", list, True),
        ("maxItems", list, False),
        ("minProperties", dict, True),
        ("maxProperties", dict, False),
    ):
        if keyword in schema:
            checks.append(_size_check(schema[keyword], kind, at_least))
    if "pattern" in schema:
        regex = re.compile(schema["pattern"])
        checks.append(lambda x: not isinstance(x, str) or regex.search(x) is not None)
    if "required" in schema:
        required = tuple(schema["required"])
        checks.append(lambda x: not isinstance(x, dict) or all(r in x for r in required))
    if "properties" in schema:
        props = tuple((name, sub(s)) for name, s in schema["properties"].items())
        checks.append(_properties_check(props))
    if "additionalProperties" in schema:
        known = frozenset(schema.get("properties", {}))
        extra = sub(schema["additionalProperties"])
        checks.append(
            lambda x: (
                not isinstance(x, dict) or all(extra(v) for k, v in x.items() if k not in known)
            )
        )
    if "items" in schema:
        item = sub(schema["items"])
        checks.append(lambda x: not isinstance(x, list) or all(item(v) for v in x))
    if "allOf" in schema:
        parts = tuple(sub(s) for s in schema["allOf"])
        checks.append(lambda x: all(p(x) for p in parts))
    if "anyOf" in schema:
        options = tuple(sub(s) for s in schema["anyOf"])
        checks.append(lambda x: any(p(x) for p in options))
    if "oneOf" in schema:
        choices = tuple(sub(s) for s in schema["oneOf"])
        checks.append(lambda x: sum(1 for p in choices if p(x)) == 1)
    if "not" in schema:
        negated = sub(schema["not"])
        checks.append(lambda x: not negated(x))
    return checks


def _number_check(limit: Any, compare: Callable[[Any, Any], bool]) -> Predicate:
    if not _is_number(limit):
        raise _Unsupported
    return lambda x: not _is_number(x) or compare(x, limit)


def _size_check(limit: Any, kind: type, at_least: bool) -> Predicate:
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise _Unsupported
    if at_least:
        return lambda x: not isinstance(x, kind) or len(x) >= limit
    return lambda x: not isinstance(x, kind) or len(x) <= limit


def _properties_check(props: tuple[tuple[str, Predicate], ...]) -> Predicate:
    def check(x: Any) -> bool:
        if not isinstance(x, dict):
            return True
        for name, pred in props:  # noqa: SIM110 - see _all_of
            if name in x and not pred(x[name]):
                return False
        return True

    return check


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

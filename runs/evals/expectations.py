"""A task's expectations judged against what its run did: a list of failures, empty = passed."""

from __future__ import annotations

from runs.evals.observe import Observation
from runs.evals.suite import Expect
from runs.evaluation.checks import MISSING, run_check


def _in_order(seen: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` occurs in ``seen`` as a subsequence."""
    it = iter(seen)
    return all(any(tool == want for tool in it) for want in wanted)


def _tools(expect: Expect, seen: Observation) -> list[str]:
    failures = []
    ran = set(seen.tools)
    if missing := [t for t in expect.tools.include if t not in ran]:
        failures.append(f"tools never ran: {', '.join(missing)}")
    if forbidden := [t for t in expect.tools.exclude if t in ran]:
        failures.append(f"tools ran that must not: {', '.join(forbidden)}")
    if expect.tools.order and not _in_order(seen.tools, expect.tools.order):
        failures.append(
            f"tools not in the order {' → '.join(expect.tools.order)} (ran: {', '.join(seen.tools)})"
        )
    for first, then in expect.before:
        if then in ran and (first not in ran or seen.tools.index(first) > seen.tools.index(then)):
            failures.append(f"{then} ran before {first}")
    return failures


def _limits(expect: Expect, seen: Observation) -> list[str]:
    failures = []
    if expect.max_steps is not None and seen.steps > expect.max_steps:
        failures.append(f"{seen.steps} steps ran, the limit is {expect.max_steps}")
    if expect.max_tokens is not None and seen.tokens > expect.max_tokens:
        failures.append(f"{seen.tokens} tokens used, the limit is {expect.max_tokens}")
    if expect.max_cost is not None and float(seen.cost) > expect.max_cost:
        failures.append(f"cost ${seen.cost}, the limit is ${expect.max_cost}")
    if expect.max_seconds is not None and seen.seconds > expect.max_seconds:
        failures.append(f"took {seen.seconds:.1f}s, the limit is {expect.max_seconds:g}s")
    return failures


def _results(expect: Expect, seen: Observation) -> list[str]:
    failures = []
    for item in expect.results:
        where = f"step {item.step}" if item.step else f"tool {item.tool}"
        found = (
            seen.results.get(item.step, MISSING)
            if item.step
            else seen.tool_results.get(item.tool, MISSING)
        )
        if found is MISSING or found is None:
            failures.append(f"{where}: no result to check")
            continue
        if problem := run_check(item.check, found):
            failures.append(f"{where}: {problem}")
    return failures


def judge(expect: Expect, seen: Observation) -> list[str]:
    """Every way the run missed its expectations, outcome first."""
    failures = []
    if seen.status != expect.outcome:
        why = f" ({seen.stop_reason[:200]})" if seen.stop_reason else ""
        failures.append(f"ended {seen.status}, expected {expect.outcome}{why}")
    elif expect.cause and seen.cause != expect.cause:
        failures.append(f"escalated with cause {seen.cause or 'none'}, expected {expect.cause}")
    return failures + _tools(expect, seen) + _limits(expect, seen) + _results(expect, seen)

"""Hypothesis strategies for plans as a model or a person might write them, well or badly.

Shared by ``test_fuzz.py`` (a bounded run in the suite) and ``bench/fuzz_plans.py``
(tens of thousands of cases). ``check_document`` and ``check_text`` hold the one
property: only the project's own errors come out, and nothing accepted is unstorable.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import strategies as st

from runs.planning.schema import PlanSyntaxError, parse_plan_text
from runs.planning.validation import ValidatedPlan, validate_plan
from runs.textdata import unstorable
from runs.tools.base import ToolSpec

TOOLS = {
    "echo": ToolSpec(
        name="echo",
        kind="python",
        parameters_schema={
            "type": "object",
            "properties": {
                "text": {"type": "string", "maxLength": 50},
                "count": {"type": "integer", "minimum": 0, "maximum": 10},
                "ratio": {"type": "number"},
                "flag": {"type": "boolean"},
                "mode": {"enum": ["a", "b"]},
                "nested": {"type": "object", "properties": {"x": {"type": "array"}}},
            },
            "required": ["text"],
            "additionalProperties": False,
        },
    ),
    "free": ToolSpec(name="free", kind="python", parameters_schema={"type": "object"}),
    "off": ToolSpec(name="off", kind="python", enabled=False),
    "loose": ToolSpec(name="loose", kind="python"),
}
MAX_STEPS = 20

# Values a database refuses, or that broke Python's own conversions (int digits, recursion).
NASTY_TEXT = ["\x00", "a\x00b", "\ud800", "x\udfffy", "{{ steps.a.result }}", "é", ""]
UNSTORABLE_NUMBERS: list[Any] = [float("nan"), float("inf"), float("-inf"), 2**63, -(2**63) - 1]
# Integers past Python's 4,300-digit str conversion limit; hypothesis cannot print them, so
# they are made inside the strategy.
HUGE_DIGITS = [20, 40, 4400, 5000]
huge_ints = st.sampled_from(HUGE_DIGITS).flatmap(lambda n: st.sampled_from([10**n, -(10**n)]))

text = st.one_of(st.text(max_size=12), st.sampled_from(NASTY_TEXT))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([*UNSTORABLE_NUMBERS, 2**64, 1e308, -0.0]),
    huge_ints,
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=12,
)
ids = st.one_of(
    st.sampled_from(["a", "b", "c", "step-1", "x_2"]),
    st.integers(min_value=-3, max_value=2**65),
    text,
)
actions = st.one_of(st.sampled_from(sorted(TOOLS)), text, scalars)
echo_params = st.fixed_dictionaries(
    {},
    optional={
        "text": st.one_of(text, scalars),
        "count": st.one_of(st.integers(min_value=-2, max_value=12), scalars),
        "ratio": scalars,
        "flag": scalars,
        "mode": st.one_of(st.sampled_from(["a", "b", "c"]), scalars),
        "nested": json_values,
        "extra": json_values,
    },
)
steps = st.fixed_dictionaries(
    {"id": ids, "action": actions},
    optional={
        "params": st.one_of(echo_params, st.dictionaries(text, json_values, max_size=3), scalars),
        "depends_on": st.one_of(st.lists(ids, max_size=3), ids, st.none()),
        "description": st.one_of(text, scalars),
        "confidence": scalars,
        "tool": actions,
        "extra": json_values,
    },
)
# Plans right but for their values: a valid chain of steps whose params are anything.
near_valid = st.lists(
    st.tuples(
        st.sampled_from(["free", "loose", "echo"]), st.dictionaries(text, json_values, max_size=3)
    ),
    min_size=1,
    max_size=5,
).map(
    lambda items: {
        "goal": "fuzz",
        "steps": [
            {
                "id": f"s{i}",
                "action": action,
                "params": {"text": "ok"} if action == "echo" and i % 2 else params,
                "depends_on": [f"s{i - 1}"] if i else [],
            }
            for i, (action, params) in enumerate(items)
        ],
    }
)
documents = st.one_of(
    near_valid,
    st.fixed_dictionaries(
        {"steps": st.one_of(st.lists(steps, max_size=6), scalars)},
        optional={
            "goal": st.one_of(text, scalars),
            "rollback": st.one_of(
                st.lists(
                    st.fixed_dictionaries({"action": actions}, optional={"params": json_values}),
                    max_size=2,
                ),
                scalars,
            ),
            "extra": json_values,
        },
    ),
    st.lists(steps, max_size=6),
    json_values,
)


def _dump(document: Any, how: str) -> str:
    if how == "yaml":
        try:
            return yaml.safe_dump(document, allow_unicode=True)
        except (yaml.YAMLError, ValueError, TypeError):
            return "steps: []"
    try:  # json writes NaN, Infinity and refuses ints of more than 4,300 digits
        return json.dumps(document, ensure_ascii=how == "ascii")
    except ValueError:
        return "[]"


# Text shapes that broke parsers: deep nesting, alias bombs, long integers, odd YAML.
NASTY_DOCUMENTS = [
    "[" * 3000 + "]" * 3000,
    "a: " + "[" * 200_000,
    "- " * 3000 + "x",
    '{"a": ' + "1" * 5000 + "}",
    "a: " + "9" * 5000,
    "a: 0x" + "f" * 5000,
    "a: 1_000_" + "0" * 5000,
    "a: 1:2:3:4:5",
    "a: .nan\nb: -.inf",
    '{"a": NaN, "b": -Infinity}',
    "a: &x [1, 2]\nb: &y [*x, *x, *x, *x]\nc: &z [*y, *y, *y, *y]\nd: [*z, *z, *z, *z, *z]",
    "a: !!binary aGVsbG8=",
    "a: !!python/object:os.system ls",
    "? [1, 2]\n: v",
    "a: 2024-05-01 12:00:00",
    "a: '\\0'",
    'a: "\\0 and \\ud800"',
    '{"a": "\\u0000"}',
    '{"a": "\\ud800"}',
    "a: \ud800",
    "[\udfff",
    '```json\n{"steps": []}\n```',
    "\t{",
    "",
]
texts = st.one_of(
    st.builds(_dump, documents, st.sampled_from(["yaml", "json", "ascii"])),
    st.sampled_from(NASTY_DOCUMENTS),
    st.text(max_size=60),
)


def check_document(raw: Any) -> ValidatedPlan:
    """Validate ``raw``; a plan accepted must be storable, whole and as normalized."""
    validated = validate_plan(raw, tools=TOOLS, max_steps=MAX_STEPS)
    if validated.is_valid:
        assert validated.document is not None
        assert unstorable(raw) is None, f"accepted an unstorable plan: {unstorable(raw)}"
        normalized = validated.document.model_dump(mode="json")
        assert unstorable(normalized) is None
        json.dumps(raw, allow_nan=False)
    return validated


def check_text(text: str) -> ValidatedPlan | None:
    """Parse ``text`` as plan text (only PlanSyntaxError may come out), then validate it."""
    try:
        document = parse_plan_text(text)
    except PlanSyntaxError:
        return None
    assert unstorable(document) is None, f"the parser passed {unstorable(document)}"
    return check_document(document)

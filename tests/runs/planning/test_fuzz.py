"""Fuzzing plan text and plan documents: only the project's errors, never an unstorable plan.

A bounded run here; ``bench/fuzz_plans.py`` runs the same properties on tens of thousands.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from runs.planning.schema import PlanSyntaxError, parse_plan_text
from runs.planning.validation import validate_plan
from tests.runs.planning.fuzzing import (
    HUGE_DIGITS,
    NASTY_DOCUMENTS,
    NASTY_TEXT,
    TOOLS,
    UNSTORABLE_NUMBERS,
    check_document,
    check_text,
    documents,
    texts,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)


@FUZZ
@given(documents)
def test_validating_any_document_gives_problems_or_a_storable_plan(raw: Any) -> None:
    check_document(raw)


@FUZZ
@given(texts)
def test_parsing_any_text_gives_a_syntax_error_or_storable_data(text: str) -> None:
    check_text(text)


@pytest.mark.parametrize(
    "text", [pytest.param(t, id=f"text{i}") for i, t in enumerate(NASTY_DOCUMENTS)]
)
def test_each_known_nasty_text_is_refused_or_parsed_to_storable_data(text: str) -> None:
    check_text(text)


@pytest.mark.parametrize(
    "value",
    # Explicit ids: pytest would print a 5,000-digit integer, which Python refuses.
    [
        *(pytest.param(v, id=repr(v)) for v in [*NASTY_TEXT[:4], *UNSTORABLE_NUMBERS]),
        *(pytest.param(10**n, id=f"10**{n}") for n in HUGE_DIGITS),
    ],
)
def test_an_unstorable_param_is_a_problem_at_its_path_whatever_the_params_type(
    value: Any,
) -> None:
    # ``count`` is an integer param: NUL text, a NaN or a 5,000-digit integer is refused as
    # unstorable before the type check could try to print it.
    raw = {"steps": [{"id": "a", "action": "echo", "params": {"text": "hi", "count": value}}]}
    validated = validate_plan(raw, tools=TOOLS, max_steps=5)
    assert not validated.is_valid
    assert [(p.path, p.code) for p in validated.problems] == [
        ("steps[0].params.count", "unstorable")
    ]


def test_a_deep_document_is_one_problem_and_no_recursion_error() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    validated = validate_plan(
        {"steps": [{"id": "a", "action": "free", "params": {"deep": deep}}]},
        tools=TOOLS,
        max_steps=5,
    )
    assert [p.code for p in validated.problems] == ["unstorable"]
    assert "nested more than" in validated.problems[0].message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: " + "9" * 5000, "an integer has more than 100 digits"),
        ("[" * 3000 + "]" * 3000, "nested more than 100 levels"),
        ("a: " + "[" * 200_000, "nested more than 100 levels"),
        (
            "a: &x [1,1,1,1,1,1,1,1,1,1]\n"
            + "".join(
                f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n"
                for p, c in zip("xbcdef", "bcdefg", strict=True)
            ),
            "expands to more than",
        ),
        ('{"a": "\\u0000"}', "NUL"),
        ("a: 99999999999999999999", "64 bits"),
        ("a: .nan", "not a finite number"),
    ],
)
def test_text_beyond_the_limits_is_a_syntax_error_naming_the_limit(text: str, message: str) -> None:
    with pytest.raises(PlanSyntaxError, match=message):
        parse_plan_text(text)

"""Lock templates: what a tool or a step may declare, and the keys they render to."""

from __future__ import annotations

import pytest

from runs.tools.locks import (
    LockKeyError,
    lock_template_problems,
    locks_problems,
    render_lock_keys,
    template_params,
)


def test_keys_render_over_the_params_sorted_and_once_each() -> None:
    keys = render_lock_keys(
        ["env:{{ params.environment }}", "db:{{params.target.db}}", "env:{{ params.environment }}"],
        {"environment": "production", "target": {"db": "main"}},
    )
    assert keys == ("db:main", "env:production")


def test_plain_values_render_as_text() -> None:
    assert render_lock_keys(["n:{{ params.n }}-{{ params.on }}"], {"n": 3, "on": True}) == (
        "n:3-true",
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({}, "params have no 'environment'"),
        ({"environment": {"a": 1}}, "is not a plain value"),
        ({"environment": None}, "is not a plain value"),
    ],
)
def test_a_key_that_cannot_be_rendered_says_why(params: dict, message: str) -> None:
    with pytest.raises(LockKeyError, match=message):
        render_lock_keys(["env:{{ params.environment }}"], params)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("", "non-empty string"),
        (3, "non-empty string"),
        ("env:{{ steps.a.result }}", "only '{{ params.<name> }}' may be used"),
        ("env:{{ params.environment }", "unclosed"),
        ("x" * 201, "at most 200"),
    ],
)
def test_bad_templates_are_named(template: object, problem: str) -> None:
    (found,) = lock_template_problems(template)
    assert problem in found


def test_a_locks_field_must_be_a_list() -> None:
    assert locks_problems("env:prod") == ["locks must be a list of strings"]
    assert locks_problems(["env:prod", "env:{{ params.environment }}"]) == []


def test_a_template_names_the_params_it_reads() -> None:
    assert template_params("{{ params.a.b }}/{{ params.c }}") == ["a", "c"]

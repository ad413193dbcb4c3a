"""The repair prompt's account of an answer that is not JSON."""

from __future__ import annotations

from runs.planning.attempts import syntax_problem


def test_a_fenced_truncated_answer_is_located_inside_the_json() -> None:
    answer = '```json\n{\n  "goal": "deploy",\n  "steps": [\n'
    assert syntax_problem(answer) == "invalid JSON: Expecting value at line 3, column 13"


def test_an_unfenced_truncated_answer_is_located_as_written() -> None:
    answer = '{"goal": "deploy", "steps": [{"id": "a"'
    assert syntax_problem(answer) == "invalid JSON: Expecting ',' delimiter at line 1, column 40"


def test_a_fence_around_nothing_is_an_empty_answer() -> None:
    assert syntax_problem("```json\n```") == "the answer is empty"


def test_a_fenced_answer_that_parses_is_not_an_object() -> None:
    assert syntax_problem("```json\n[1, 2]\n```") == "the answer is not a JSON object"

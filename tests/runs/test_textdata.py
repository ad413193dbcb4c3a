"""The bounded JSON/YAML parser and the storability rule every entry point shares."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runs import textdata
from runs.textdata import (
    TextDataError,
    parse_json,
    parse_json_or_yaml,
    parse_yaml,
    storable_copy,
    storable_text,
    unstorable,
    unstorable_values,
)


def test_json_and_yaml_parse_plain_documents() -> None:
    assert parse_json('{"a": [1, 2.5, true, null]}') == {"a": [1, 2.5, True, None]}
    assert parse_yaml("a: 2024-05-01\nb: 0x1F\n") == {"a": "2024-05-01", "b": 31}
    assert parse_json_or_yaml('{\t"a": 1}') == {"a": 1}  # a tab: JSON, which YAML refuses
    assert parse_json_or_yaml("{a: 1}") == {"a": 1}  # JSON-looking YAML


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_json, "[" * 2000 + "]" * 2000, "nested more than 100"),
        (parse_json, "[" * 101 + "]" * 101, "nested more than 100"),
        (parse_json, "1" * 101, "more than 100 digits"),
        (parse_json, "[Infinity]", "Infinity is not a number JSON allows"),
        (parse_json, b"\xff", "not UTF-8"),
        (parse_json, '{"a": ', "invalid JSON"),
        (parse_yaml, "- " * 101 + "x", "nested more than 100"),
        (parse_yaml, "a: " + "{" * 500_000, "nested more than 100"),
        (parse_yaml, "a: " + "1" * 101, "more than 100 digits"),
        (parse_yaml, "a: 0b" + "1" * 101, "more than 100 digits"),
        (parse_yaml, "a: \ud800", "lone surrogates"),
        (parse_yaml, "a: [", "invalid YAML"),
        (parse_json_or_yaml, '{"a": ' + "9" * 5000 + "}", "more than 100 digits"),
    ],
)
def test_text_beyond_a_limit_is_a_text_data_error(parse: Any, text: Any, message: str) -> None:
    with pytest.raises(TextDataError, match=message):
        parse(text)


def test_aliases_are_counted_at_their_expanded_size() -> None:
    levels = "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcde", "bcdef", strict=True)
    )
    assert parse_yaml("a: &a [1]\nb: [*a, *a]")["b"] == [[1], [1]]
    with pytest.raises(TextDataError, match="expands to more than"):
        parse_yaml("a: &a [1,1,1,1,1,1,1,1,1,1]\n" + levels + "g: [*f, *f, *f, *f, *f]")


def test_a_document_longer_than_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(textdata, "MAX_CHARS", 10)
    for parse in (parse_json, parse_yaml, parse_json_or_yaml):
        with pytest.raises(TextDataError, match="longer than 10 characters"):
            parse('{"a": "0123456789"}')


def test_every_unstorable_value_is_named_with_its_path() -> None:
    value = {
        "ok": [1, "x", 2.5, None, True, 2**63 - 1, -(2**63)],
        "steps": [{"params": {"n": 2**63, "s": "a\x00", "f": float("nan")}}],
        "u": "\udc80",
        1: "key",
    }
    assert list(unstorable_values(value)) == [
        ("", "key 1 must be text (quote it)"),  # an object's keys come before its values
        ("steps[0].params.n", "integers must fit in 64 bits (-2^63 to 2^63-1)"),
        ("steps[0].params.s", "text may not contain NUL characters"),
        ("steps[0].params.f", "nan is not a finite number"),
        ("u", "text may not contain lone surrogates"),
    ]
    assert unstorable({"ok": value["ok"]}) is None
    assert unstorable({"when": object()}) == (
        "when",
        "object values are not allowed (quote it as text)",
    )


def test_storable_copies_escape_what_a_database_refuses() -> None:
    assert storable_text("plain é") == "plain é"
    assert storable_text("a\x00b\ud800") == "a\\x00b\\ud800"
    copy = storable_copy({"t\x00": ["x\udfff", float("inf"), 10**5000, 7, None]})
    assert copy == {"t\\x00": ["x\\udfff", "inf", "(an integer of 16610 bits)", 7, None]}
    assert unstorable(copy) is None
    json.dumps(copy, allow_nan=False)

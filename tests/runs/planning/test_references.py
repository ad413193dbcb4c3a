"""Finding and resolving ``{{ steps.<id>.result... }}`` references in step params (no database)."""

from __future__ import annotations

from typing import Any

import pytest

from runs.planning import references
from runs.planning.references import (
    Reference,
    ReferenceResolutionError,
    find_references,
    is_whole_reference,
    resolve_references,
)

RESULTS: dict[str, Any] = {
    "backup": {"file": "/var/backups/db.gz", "size": 2048},
    "list": {"items": [{"name": "first"}, {"name": "second"}], "count": 2},
    "flag": True,
    "nothing": None,
}


def test_find_references_walks_nested_dicts_lists_and_strings() -> None:
    params = {
        "db": "{{ steps.backup.result.file }}",
        "files": ["plain", "{{steps.list.result.items.0.name}}"],
        "nested": {
            "deep": ["x", {"y": "copy {{ steps.backup.result }} to {{ steps.list.result.count }}"}]
        },
        "count": 3,
    }
    assert find_references(params) == [
        Reference("backup", ("file",), "db"),
        Reference("list", ("items", "0", "name"), "files[1]"),
        Reference("backup", (), "nested.deep[1].y"),
        Reference("list", ("count",), "nested.deep[1].y"),
    ]


def test_bracket_indexes_are_read_like_dotted_ones() -> None:
    [ref] = find_references({"x": "{{ steps.list.result.items[1].name }}"})
    assert ref.path == ("items", "1", "name")
    assert ref.expression == "steps.list.result.items.1.name"


def test_double_braces_that_are_not_step_references_are_ignored() -> None:
    params = {"tpl": "{{ name }}", "other": "{{ steps.x.output }}", "half": "{{ steps.x.result"}
    assert find_references(params) == []
    assert resolve_references(params, RESULTS) == params


def test_a_whole_reference_keeps_the_json_type_of_the_value() -> None:
    params = {
        "size": "{{ steps.backup.result.size }}",
        "all": "{{ steps.backup.result }}",
        "items": "{{ steps.list.result.items }}",
        "flag": "{{ steps.flag.result }}",
        "none": "{{ steps.nothing.result }}",
    }
    assert resolve_references(params, RESULTS) == {
        "size": 2048,
        "all": {"file": "/var/backups/db.gz", "size": 2048},
        "items": [{"name": "first"}, {"name": "second"}],
        "flag": True,
        "none": None,
    }


def test_an_embedded_reference_is_interpolated_as_text() -> None:
    params = {
        "msg": "saved {{ steps.backup.result.file }} ({{ steps.backup.result.size }} bytes)",
        "json": "meta={{ steps.list.result.items.1 }} ok={{ steps.flag.result }}",
    }
    assert resolve_references(params, RESULTS) == {
        "msg": "saved /var/backups/db.gz (2048 bytes)",
        "json": 'meta={"name":"second"} ok=true',
    }


def test_a_reference_to_a_step_without_a_result_is_an_error() -> None:
    with pytest.raises(ReferenceResolutionError) as info:
        resolve_references({"path": "{{ steps.missing.result }}"}, RESULTS, step="migrate")
    assert str(info.value).startswith("step 'migrate' param 'path': steps.missing.result")
    assert "step 'missing' has no result" in str(info.value)


def test_a_missing_key_names_the_keys_that_exist() -> None:
    with pytest.raises(ReferenceResolutionError) as info:
        resolve_references({"path": "{{ steps.backup.result.path }}"}, RESULTS, step="migrate")
    assert str(info.value) == (
        "step 'migrate' param 'path': steps.backup.result has no key 'path' (keys: file, size)"
    )


def test_a_list_index_out_of_range_says_how_long_the_list_is() -> None:
    with pytest.raises(ReferenceResolutionError) as info:
        resolve_references({"f": ["{{ steps.list.result.items.5.name }}"]}, RESULTS, step="s")
    assert str(info.value) == (
        "step 's' param 'f[0]': steps.list.result.items has no index 5 (it has 2 items)"
    )


def test_a_path_into_a_scalar_or_a_word_index_into_a_list_is_an_error() -> None:
    with pytest.raises(ReferenceResolutionError, match=r"size is a number \(2048\)"):
        resolve_references({"x": "{{ steps.backup.result.size.kb }}"}, RESULTS)
    with pytest.raises(ReferenceResolutionError, match="items is a list, so 'first'"):
        resolve_references({"x": "{{ steps.list.result.items.first }}"}, RESULTS)


def test_resolved_values_are_copies_so_tools_cannot_alter_other_results() -> None:
    resolved = resolve_references({"all": "{{ steps.list.result }}"}, RESULTS)
    resolved["all"]["items"].append("mutated")
    assert len(RESULTS["list"]["items"]) == 2


def test_params_without_braces_are_resolved_without_any_regex_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Forbidden:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError("the regex must not run without '{{'")

    monkeypatch.setattr(references, "REFERENCE_RE", Forbidden())
    params = {"a": "plain", "b": [1, {"c": "x}y{"}], "d": None}
    assert resolve_references(params, {}) == params
    assert find_references(params) == []
    assert not is_whole_reference("plain")


def test_only_a_string_that_is_exactly_one_reference_is_whole() -> None:
    assert is_whole_reference("{{ steps.a.result.x }}")
    assert is_whole_reference("{{steps.a.result}}")
    assert not is_whole_reference(" {{ steps.a.result }}")
    assert not is_whole_reference("{{ steps.a.result }}{{ steps.b.result }}")
    assert not is_whole_reference(5)

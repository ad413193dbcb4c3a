"""The one diff of the product: JSON values field by field, and plan documents step by step."""

from __future__ import annotations

from runs.plan_versions import plan_document_diff, value_changes


def test_objects_are_compared_key_by_key_with_dotted_paths() -> None:
    before = {"status": "open", "who": {"name": "rob", "team": "ops"}, "gone": 1}
    after = {"status": "approved", "who": {"name": "rob", "team": "dev"}, "new": [1, 2]}
    assert value_changes(before, after) == [
        {"path": "status", "op": "changed", "from": "open", "to": "approved"},
        {"path": "who.team", "op": "changed", "from": "ops", "to": "dev"},
        {"path": "gone", "op": "removed", "from": 1, "to": None},
        {"path": "new", "op": "added", "from": None, "to": [1, 2]},
    ]


def test_lists_and_scalars_are_compared_whole_and_key_order_does_not_count() -> None:
    assert value_changes({"a": [1, 2]}, {"a": [2, 1]}) == [
        {"path": "a", "op": "changed", "from": [1, 2], "to": [2, 1]}
    ]
    assert (
        value_changes({"k": {"x": [1, {"a": 1, "b": 2}]}}, {"k": {"x": [1, {"b": 2, "a": 1}]}})
        == []
    )
    # Types count, as in the plan hash: a boolean is not the number 1, nor 1 the number 1.0.
    assert value_changes({"f": True}, {"f": 1})[0]["op"] == "changed"
    assert value_changes({"n": 1}, {"n": 1.0})[0]["op"] == "changed"
    assert value_changes(None, {"a": 1}) == [
        {"path": "", "op": "added", "from": None, "to": {"a": 1}}
    ]
    assert value_changes("x", "x") == []


def test_a_plan_diff_names_steps_added_removed_changed_and_kept_in_plan_order() -> None:
    before = {
        "goal": "deploy",
        "steps": [
            {"id": "build", "action": "shell", "params": {"cmd": "make"}},
            {
                "id": "deploy",
                "action": "deploy",
                "params": {"env": "staging"},
                "depends_on": ["build"],
            },
            {"id": "notify", "action": "notify"},
        ],
    }
    after = {
        "goal": "deploy to production",
        "steps": [
            {"id": "build", "action": "shell", "params": {"cmd": "make"}, "depends_on": []},
            {
                "id": "deploy",
                "action": "deploy",
                "params": {"env": "production", "version": "2"},
                "depends_on": ["build"],
            },
            {"id": "smoke", "action": "http", "depends_on": ["deploy"]},
        ],
    }
    diff = plan_document_diff(before, after)
    assert diff["added"] == ["smoke"] and diff["removed"] == ["notify"]
    assert diff["kept"] == ["build"]  # an empty depends_on is the same as none
    (deploy,) = diff["changed"]
    assert deploy["id"] == "deploy" and deploy["fields"] == ["params"]
    assert deploy["changes"] == [
        {"path": "params.env", "op": "changed", "from": "staging", "to": "production"},
        {"path": "params.version", "op": "added", "from": None, "to": "2"},
    ]
    assert deploy["values"]["params"]["from"] == {"env": "staging"}
    assert diff["plan_changes"] == [
        {"path": "goal", "op": "changed", "from": "deploy", "to": "deploy to production"}
    ]


def test_a_plan_diff_copes_with_documents_that_are_not_plans() -> None:
    diff = plan_document_diff(None, {"steps": [{"id": "a"}, {"id": "a"}, "junk", {"id": 3}]})
    # Duplicate or missing ids are named by position, so nothing is lost.
    assert diff["added"] == ["a", "#2", "#3", "#4"] and diff["removed"] == []
    assert plan_document_diff([1], "text")["changed"] == []
    same = {"steps": [{"id": "a", "action": "x"}]}
    assert plan_document_diff(same, same) == {
        "added": [],
        "removed": [],
        "changed": [],
        "kept": ["a"],
        "plan_changes": [],
    }

"""The plan graph layout: layers by dependency depth, few crossings, edges between real steps."""

from __future__ import annotations

import itertools

import pytest

from runs.graph import LAYER_GAP, NODE_HEIGHT, NODE_WIDTH, Graph, layers_of, layout


def crossings(graph: Graph) -> int:
    """Edges between the same two layers that cross (compared by their end orders)."""
    ends = [(graph.node(e.source), graph.node(e.target)) for e in graph.edges]
    count = 0
    for (a1, b1), (a2, b2) in itertools.combinations(ends, 2):
        if a1.layer == a2.layer and b1.layer == b2.layer:
            count += (a1.order - a2.order) * (b1.order - b2.order) < 0
    return count


def test_a_chain_goes_left_to_right_one_layer_per_step() -> None:
    graph = layout([("a", []), ("b", ["a"]), ("c", ["b"])])
    assert [(n.key, n.layer) for n in graph.nodes] == [("a", 0), ("b", 1), ("c", 2)]
    xs = [n.x for n in graph.nodes]
    assert xs[1] - xs[0] == NODE_WIDTH + LAYER_GAP and xs[2] - xs[1] == NODE_WIDTH + LAYER_GAP
    assert len({n.y for n in graph.nodes}) == 1
    assert graph.width >= xs[2] + NODE_WIDTH and graph.height >= NODE_HEIGHT


def test_a_step_sits_one_layer_after_its_deepest_dependency() -> None:
    # The demo migration: notify depends on verify (layer 4) and backup (layer 1).
    steps = [
        ("read_schema", []),
        ("backup", ["read_schema"]),
        ("dry_run", ["backup"]),
        ("migrate", ["dry_run", "backup"]),
        ("verify", ["migrate"]),
        ("notify", ["verify", "backup"]),
    ]
    assert layers_of(steps) == {
        "read_schema": 0,
        "backup": 1,
        "dry_run": 2,
        "migrate": 3,
        "verify": 4,
        "notify": 5,
    }
    graph = layout(steps)
    assert {(e.source, e.target) for e in graph.edges} == {
        ("read_schema", "backup"),
        ("backup", "dry_run"),
        ("dry_run", "migrate"),
        ("backup", "migrate"),
        ("migrate", "verify"),
        ("verify", "notify"),
        ("backup", "notify"),
    }


def test_parallel_branches_share_a_layer_without_overlapping() -> None:
    graph = layout([("a", []), ("b", []), ("c", ["a", "b"]), ("d", ["a"])])
    first = [n for n in graph.nodes if n.layer == 0]
    assert {n.key for n in first} == {"a", "b"}
    assert abs(first[0].y - first[1].y) >= NODE_HEIGHT
    for n in graph.nodes:
        assert n.x >= 0 and n.x + n.width <= graph.width
        assert n.y >= 0 and n.y + n.height <= graph.height


def test_ordering_within_layers_removes_avoidable_crossings() -> None:
    # Plan order puts x1 above x2, but x2's child comes first: a naive layout crosses.
    steps = [("x1", []), ("x2", []), ("y2", ["x2"]), ("y1", ["x1"]), ("z", ["y1", "y2"])]
    graph = layout(steps)
    assert crossings(graph) == 0


def test_every_edge_path_runs_from_the_sources_right_side_to_the_targets_left() -> None:
    graph = layout([("a", []), ("b", ["a"])])
    (edge,) = graph.edges
    a, b = graph.node("a"), graph.node("b")
    assert edge.path.startswith(f"M{a.x + a.width:g},{a.cy:g} C")
    assert edge.path.endswith(f"{b.x:g},{b.cy:g}")


def test_unknown_dependencies_and_duplicates_are_ignored() -> None:
    graph = layout([("a", ["ghost", "a"]), ("b", ["a", "a"])])
    assert [(e.source, e.target) for e in graph.edges] == [("a", "b")]
    assert graph.node("a").layer == 0


def test_a_cycle_is_refused_with_a_clear_error() -> None:
    with pytest.raises(ValueError, match="dependency cycle"):
        layout([("a", ["b"]), ("b", ["a"])])


def test_an_empty_plan_is_an_empty_graph() -> None:
    assert layout([]) == Graph((), (), 0, 0)


def test_a_long_chain_lays_out_without_deep_recursion() -> None:
    steps = [("s0", [])] + [(f"s{i}", [f"s{i - 1}"]) for i in range(1, 3000)]
    graph = layout(steps)
    assert graph.node("s2999").layer == 2999


def test_an_edge_that_skips_layers_arcs_above_the_nodes_in_between() -> None:
    graph = layout([("a", []), ("b", ["a"]), ("c", ["b", "a"])])
    skip = next(e for e in graph.edges if (e.source, e.target) == ("a", "c"))
    short = next(e for e in graph.edges if (e.source, e.target) == ("a", "b"))
    b = graph.node("b")
    # The curve's highest point (0.75 of the lift above its ends) clears b's top, inside the SVG.
    ends_y = graph.node("a").cy
    control_y = float(skip.path.split(" ")[1].split(",")[1])
    peak = ends_y - 0.75 * (ends_y - control_y)
    assert 0 <= peak < b.y
    assert float(short.path.split(" ")[1].split(",")[1]) == ends_y  # neighbours: no arc


def test_dependents_reverse_the_dependencies_in_plan_order_leaving_unknown_ones_out() -> None:
    from runs.graph import dependents_of

    deps = {"a": [], "c": ["a"], "b": ["a", "ghost"], "d": ["b", "c"]}
    assert dependents_of(deps) == {"a": ["c", "b"], "c": ["d"], "b": ["d"], "d": []}
    assert dependents_of({0: [], 1: [0], 2: [0, 1]}) == {0: [1, 2], 1: [2], 2: []}


def test_a_plan_is_drawn_unless_it_is_empty_too_big_or_cyclic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runs.graph import plan_layout

    assert plan_layout([("a", []), ("b", ["a"])]) is not None
    assert plan_layout([]) is None
    assert plan_layout([("a", ["b"]), ("b", ["a"])]) is None
    monkeypatch.setattr("runs.graph.GRAPH_LIMIT", 1)
    assert plan_layout([("a", []), ("b", ["a"])]) is None


def test_a_short_label_stays_on_one_line() -> None:
    from runs.graph import label_lines

    assert label_lines("read_schema") == ["read_schema"]


def test_a_long_label_wraps_after_a_separator_and_each_line_fits() -> None:
    from runs.graph import LABEL_WIDTH, label_lines, text_width

    lines = label_lines("deploy_billing_service")
    assert lines == ["deploy_billing_", "service"]
    assert all(text_width(line) <= LABEL_WIDTH for line in lines)


def test_a_label_too_long_for_two_lines_ends_in_an_ellipsis_within_the_box() -> None:
    from runs.graph import LABEL_WIDTH, label_lines, text_width

    for text in ("deploy_billing_service_canary_eu_west_1", "W" * 60, "x" * 200):
        lines = label_lines(text)
        assert len(lines) == 2 and lines[-1].endswith("…")
        assert all(text_width(line) <= LABEL_WIDTH for line in lines)
        assert "".join(lines).rstrip("…") == text[: len("".join(lines)) - 1]


def test_wide_characters_count_for_more_than_narrow_ones() -> None:
    from runs.graph import text_width

    assert text_width("WWWW") > text_width("abcd") > text_width("iiii")


def test_rollback_steps_sit_in_a_lane_below_under_the_step_they_undo() -> None:
    from runs.graph import with_rollback

    main = layout([("a", []), ("b", ["a"]), ("c", ["b"])])
    graph = with_rollback(main, [("undo_b", "b"), ("undo_b2", "b"), ("tell", "")])
    undo_b, undo_b2, tell = (graph.node(k) for k in ("undo_b", "undo_b2", "tell"))
    assert {undo_b.phase, undo_b2.phase, tell.phase} == {"rollback"}
    assert graph.node("a").phase == "main"
    lowest_main = max(n.y + n.height for n in main.nodes)
    assert all(n.y > lowest_main for n in (undo_b, undo_b2, tell))
    assert undo_b.x == undo_b2.x == graph.node("b").x and undo_b2.y > undo_b.y
    assert tell.x == graph.node("a").x  # unlinked: the first free slot of the lane
    undo = [(e.source, e.target) for e in graph.edges if e.kind == "undo"]
    assert undo == [("undo_b", "b"), ("undo_b2", "b")]
    for n in graph.nodes:
        assert n.x + n.width <= graph.width and n.y + n.height <= graph.height
    assert [n.key for n in graph.nodes][-3:] == ["undo_b", "undo_b2", "tell"]


def test_an_undo_edge_runs_from_the_rollback_steps_top_to_the_undone_steps_bottom() -> None:
    from runs.graph import with_rollback

    graph = with_rollback(layout([("a", [])]), [("restore", "a")])
    (edge,) = [e for e in graph.edges if e.kind == "undo"]
    a, restore = graph.node("a"), graph.node("restore")
    assert edge.path.endswith(f",{a.y + a.height:g}")
    assert f",{restore.y:g} L" in edge.path


def test_unlinked_rollback_steps_past_the_plans_width_widen_the_drawing() -> None:
    from runs.graph import with_rollback

    main = layout([("a", [])])
    graph = with_rollback(main, [("r1", ""), ("r2", ""), ("r3", "ghost")])
    assert graph.width > main.width
    assert not [e for e in graph.edges if e.kind == "undo"]  # "ghost" is not drawn


def test_a_plan_without_rollback_steps_is_drawn_as_before() -> None:
    from runs.graph import plan_layout, with_rollback

    main = layout([("a", []), ("b", ["a"])])
    assert with_rollback(main, []) is main
    assert plan_layout([("a", []), ("b", ["a"])], [("undo_a", "a")]) == with_rollback(
        main, [("undo_a", "a")]
    )

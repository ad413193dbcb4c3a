"""Layered layout of a plan's step DAG, computed server-side so the page draws a plain SVG.

Pure Python, no Django: nodes go left to right by dependency depth, and within a
layer are ordered to keep edges short.

1. Layer = length of the longest dependency chain leading to the step (roots are 0).
2. Order within a layer: first by position in the plan, then a few sweeps that
   sort each layer by the mean order of its neighbours in the adjacent layer
   (the barycenter heuristic), which removes most edge crossings of real plans.
3. Coordinates: fixed node size and gaps; each layer is centred vertically.
4. Rollback steps (``with_rollback``) go in a lane below, each under the step it undoes,
   joined to it by an "undo" edge.

Labels are cut into at most two lines that fit the box (``label_lines``), by an estimate
of each character's width; ``static/runs/graph.js`` trims any line the browser's font still
draws too wide, and the node's ``<title>`` keeps the full text.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

NODE_WIDTH = 150
NODE_HEIGHT = 40
# The label's room: from after the status mark to the box's right edge, at 12 px text.
LABEL_X = 28
LABEL_WIDTH = NODE_WIDTH - LABEL_X - 6
LABEL_FONT_PX = 12
LABEL_LINES = 2
ELLIPSIS = "…"
# Between the plan's lowest step and the rollback lane.
LANE_GAP = 30
LAYER_GAP = 48
ROW_GAP = 14
MARGIN = 8
SWEEPS = 4
# Bigger plans get the step table only: an SVG of thousands of nodes helps nobody.
GRAPH_LIMIT = 300
# A cubic curve whose two control points are lifted by L peaks 0.75 L above its ends.
ARC_LIFT = 48
ARC_ROOM = ARC_LIFT * 3 // 4 - NODE_HEIGHT // 2 + 6


@dataclass(frozen=True)
class GraphNode:
    key: str
    layer: int
    order: int
    x: float
    y: float
    width: float = NODE_WIDTH
    height: float = NODE_HEIGHT
    phase: str = "main"  # "rollback": drawn in the lane below the plan

    @property
    def cx(self) -> float:
        return self.x + self.width / 2

    @property
    def cy(self) -> float:
        return self.y + self.height / 2


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    path: str  # SVG path data: a cubic curve from the source's right side to the target's left
    kind: str = "depends"  # "undo": from a rollback step up to the step it undoes


@dataclass(frozen=True)
class Graph:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]
    width: float
    height: float

    def node(self, key: str) -> GraphNode:
        return next(n for n in self.nodes if n.key == key)


def dependents_of(deps: Mapping[K, Iterable[K]]) -> dict[K, list[K]]:
    """Each node's dependents, from ``deps`` (each node's dependencies); unknown ones left out."""
    dependents: dict[K, list[K]] = {node: [] for node in deps}
    for node, needs in deps.items():
        for dep in needs:
            if dep in dependents:
                dependents[dep].append(node)
    return dependents


def too_big_to_draw(steps: int) -> bool:
    """Whether a plan of ``steps`` main steps gets its step table only, no drawing."""
    return steps > GRAPH_LIMIT


def plan_layout(
    steps: Sequence[tuple[str, Iterable[str]]], rollback: Sequence[tuple[str, str]] = ()
) -> Graph | None:
    """``layout`` of a plan worth drawing, ``rollback`` steps (key, undoes) in the lane below.

    None when the plan is empty, too big to draw, or has a cycle.
    """
    if not steps or too_big_to_draw(len(steps)):
        return None
    try:
        return with_rollback(layout(steps), rollback)
    except ValueError:  # a cycle: validation keeps these out of stored plans
        return None


def layers_of(steps: Sequence[tuple[str, Iterable[str]]]) -> dict[str, int]:
    """Longest-path layer of each step; unknown dependencies are ignored, a cycle raises."""
    deps = {key: [d for d in dict.fromkeys(depends) if d != key] for key, depends in steps}
    known = set(deps)
    layer: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(key: str) -> int:
        if key in layer:
            return layer[key]
        if key in visiting:
            raise ValueError(f"dependency cycle through step {key!r}")
        visiting.add(key)
        parents = [visit(d) for d in deps[key] if d in known]
        visiting.discard(key)
        layer[key] = 1 + max(parents) if parents else 0
        return layer[key]

    # Visiting dependencies first keeps ``visit`` from recursing down a 2000-step chain.
    for key in _bottom_up(deps):
        visit(key)
    return layer


def _bottom_up(deps: dict[str, list[str]]) -> list[str]:
    """Keys in an order where dependencies usually come first (keeps ``visit`` recursion shallow)."""
    order: list[str] = []
    seen: set[str] = set()
    for start in deps:
        stack = [(start, False)]
        while stack:
            key, expanded = stack.pop()
            if expanded:
                order.append(key)
                continue
            if key in seen or key not in deps:
                continue
            seen.add(key)
            stack.append((key, True))
            stack.extend((d, False) for d in reversed(deps[key]) if d not in seen)
    return order


def layout(steps: Sequence[tuple[str, Iterable[str]]]) -> Graph:
    """Place ``steps`` (key, depends_on) in plan order; edges for every known dependency."""
    steps = [(key, list(depends)) for key, depends in steps]
    if not steps:
        return Graph((), (), 0, 0)
    layer = layers_of(steps)
    position = {key: i for i, (key, _) in enumerate(steps)}
    parents = {
        key: [d for d in dict.fromkeys(depends) if d in layer and d != key]
        for key, depends in steps
    }
    children = dependents_of(parents)
    edges = [(d, key) for key, needs in parents.items() for d in needs]

    rows: list[list[str]] = [[] for _ in range(max(layer.values()) + 1)]
    for key, _ in steps:
        rows[layer[key]].append(key)
    order = {key: i for row in rows for i, key in enumerate(row)}

    def sweep(indices: Iterable[int], neighbours: dict[str, list[str]]) -> None:
        for i in indices:
            row = rows[i]
            row.sort(key=lambda k: (_barycenter(neighbours[k], order, order[k]), position[k]))
            order.update({k: j for j, k in enumerate(row)})

    for _ in range(SWEEPS):
        sweep(range(1, len(rows)), parents)
        sweep(range(len(rows) - 2, -1, -1), children)

    tallest = max(len(row) for row in rows)
    # Edges that skip layers arc over the nodes in between; leave room for the arcs on top.
    top_room = ARC_ROOM if any(layer[t] - layer[s] > 1 for s, t in edges) else 0
    height = top_room + MARGIN * 2 + tallest * NODE_HEIGHT + (tallest - 1) * ROW_GAP
    nodes: dict[str, GraphNode] = {}
    for i, row in enumerate(rows):
        row_height = len(row) * NODE_HEIGHT + (len(row) - 1) * ROW_GAP
        top = top_room + (height - top_room - row_height) / 2
        for j, key in enumerate(row):
            nodes[key] = GraphNode(
                key=key,
                layer=i,
                order=j,
                x=MARGIN + i * (NODE_WIDTH + LAYER_GAP),
                y=top + j * (NODE_HEIGHT + ROW_GAP),
            )
    width = MARGIN * 2 + len(rows) * NODE_WIDTH + (len(rows) - 1) * LAYER_GAP
    return Graph(
        nodes=tuple(nodes[key] for key, _ in steps),
        edges=tuple(
            GraphEdge(s, t, _curve(nodes[s], nodes[t])) for s, t in sorted(set(edges), key=str)
        ),
        width=width,
        height=height,
    )


def _barycenter(neighbours: list[str], order: dict[str, int], fallback: int) -> float:
    if not neighbours:
        return float(fallback)
    return sum(order[n] for n in neighbours) / len(neighbours)


def _curve(source: GraphNode, target: GraphNode) -> str:
    x1, y1 = source.x + source.width, source.cy
    x2, y2 = target.x, target.cy
    bend = (x2 - x1) / 2
    # Skipping layers: lift the control points so the curve passes above the nodes between.
    lift = ARC_LIFT if target.layer - source.layer > 1 else 0
    return f"M{x1:g},{y1:g} C{x1 + bend:g},{y1 - lift:g} {x2 - bend:g},{y2 - lift:g} {x2:g},{y2:g}"


def with_rollback(graph: Graph, rollback: Sequence[tuple[str, str]]) -> Graph:
    """``graph`` with its plan's rollback steps (key, key of the step it undoes or "") below it.

    1. A step that undoes a drawn step sits in that step's column, in the first free row
       of the lane; the others fill the lane's free slots from the left, in plan order.
    2. An "undo" edge runs from each linked rollback step up to the step it undoes.
    """
    if not rollback:
        return graph
    main = {n.key: n for n in graph.nodes}
    columns = max((n.layer for n in graph.nodes), default=-1) + 1
    taken: set[tuple[int, int]] = set()
    slots: dict[str, tuple[int, int]] = {}

    def first_free_row(column: int) -> int:
        row = 0
        while (column, row) in taken:
            row += 1
        return row

    linked = [(key, undoes) for key, undoes in rollback if undoes in main]
    for key, undoes in linked:
        column = main[undoes].layer
        slots[key] = (column, first_free_row(column))
        taken.add(slots[key])
    column = 0
    for key, _ in rollback:
        if key in slots:
            continue
        while (column, 0) in taken:
            column += 1
        slots[key] = (column, 0)
        taken.add(slots[key])
    top = (graph.height if graph.nodes else MARGIN) + LANE_GAP
    rows = max(r for _, r in slots.values()) + 1
    placed = {
        key: GraphNode(
            key=key,
            layer=c,
            order=r,
            x=MARGIN + c * (NODE_WIDTH + LAYER_GAP),
            y=top + r * (NODE_HEIGHT + ROW_GAP),
            phase="rollback",
        )
        for key, (c, r) in slots.items()
    }
    undo_edges = tuple(
        GraphEdge(key, undoes, _undo_line(placed[key], main[undoes]), kind="undo")
        for key, undoes in linked
    )
    used = max(columns, max(c for c, _ in slots.values()) + 1)
    return Graph(
        nodes=graph.nodes + tuple(placed[key] for key, _ in rollback),
        edges=graph.edges + undo_edges,
        width=max(graph.width, MARGIN * 2 + used * NODE_WIDTH + (used - 1) * LAYER_GAP),
        height=top + rows * NODE_HEIGHT + (rows - 1) * ROW_GAP + MARGIN,
    )


def _undo_line(step: GraphNode, undone: GraphNode) -> str:
    """From the rollback step's top, up to the bottom of the step it undoes (behind the boxes between)."""
    x = step.x + step.width - 18
    return f"M{x:g},{step.y:g} L{x:g},{undone.y + undone.height:g}"


# Widths of characters in ems, roughly those of the usual sans-serif faces: enough to cut a
# label before the browser draws it; the browser trims what still overflows.
_NARROW = frozenset("ijlI.,:;'!|ft()[]/ ")
_WIDE = frozenset("mwMW@%")


def _char_ems(ch: str) -> float:
    if ch in _NARROW:
        return 0.3
    if ch in _WIDE:
        return 0.9
    if ch.isupper() or not ch.isascii():
        return 0.72
    return 0.58


_EMS = {chr(c): _char_ems(chr(c)) for c in range(32, 127)}


def text_width(text: str, font_px: float = LABEL_FONT_PX) -> float:
    """Estimated width in pixels of ``text`` drawn at ``font_px``."""
    return sum(_EMS.get(ch) or _char_ems(ch) for ch in text) * font_px


def label_lines(text: str, width: float = LABEL_WIDTH, max_lines: int = LABEL_LINES) -> list[str]:
    """``text`` in at most ``max_lines`` lines of at most ``width`` px, cut with "…" if needed.

    Lines break after ``_``, ``-``, ``.`` or ``/`` where one fits, else anywhere. Linear in
    the text's length: a 300-step page cuts every name on each render.
    """
    room = width / LABEL_FONT_PX  # in ems
    if len(text) * 0.9 <= room or text_width(text) <= width:  # short names: one line
        return [text]
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines:
        used, fit = 0.0, 0
        while (
            fit < len(rest) and used + (ems := _EMS.get(rest[fit]) or _char_ems(rest[fit])) <= room
        ):
            used += ems
            fit += 1
        fit = max(fit, 1)
        if fit == len(rest):
            lines.append(rest)
            rest = ""
            break
        cut = max(rest.rfind(sep, 0, fit) + 1 for sep in "_-./")
        cut = cut if cut > fit // 2 else fit
        lines.append(rest[:cut])
        rest = rest[cut:]
    if rest:
        last = lines[-1]
        ellipsis = _char_ems(ELLIPSIS)
        used = sum(_char_ems(ch) for ch in last)
        while last and used + ellipsis > room:
            used -= _char_ems(last[-1])
            last = last[:-1]
        lines[-1] = last + ELLIPSIS
    return lines

"""Layered layout of a plan's step DAG, computed server-side so the page draws a plain SVG.

Pure Python, no Django: nodes go left to right by dependency depth, and within a
layer are ordered to keep edges short.

1. Layer = length of the longest dependency chain leading to the step (roots are 0).
2. Order within a layer: first by position in the plan, then a few sweeps that
   sort each layer by the mean order of its neighbours in the adjacent layer
   (the barycenter heuristic), which removes most edge crossings of real plans.
3. Coordinates: fixed node size and gaps; each layer is centred vertically.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

NODE_WIDTH = 150
NODE_HEIGHT = 36
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


def plan_layout(steps: Sequence[tuple[str, Iterable[str]]]) -> Graph | None:
    """``layout`` of a plan worth drawing; None when it is empty, too big to draw, or has a cycle."""
    if not steps or too_big_to_draw(len(steps)):
        return None
    try:
        return layout(steps)
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

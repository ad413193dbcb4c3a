"""Graph algorithms of plan validation: topological order, cycles and their shortest witness, ancestors."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from runs.graph import dependents_of
from runs.planning.references import Reference


# -- graph helpers --------------------------------------------------------------------
def topological_order(nodes: list[int], deps: list[list[int]]) -> tuple[list[int], list[int]]:
    """Topological order preferring plan position; returns (order, nodes left in or after cycles)."""
    indegree = {k: len(deps[k]) for k in nodes}
    dependents = dependents_of({k: deps[k] for k in nodes})
    ready = [k for k in nodes if indegree[k] == 0]  # ascending, so already a heap
    order: list[int] = []
    while ready:
        k = heapq.heappop(ready)
        order.append(k)
        for c in dependents[k]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(ready, c)
    remaining = [k for k in nodes if indegree[k] > 0]
    return order, remaining


def strongly_connected(nodes: list[int], deps: list[list[int]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative, on the subgraph ``nodes`` (edges: step -> its dependencies)."""
    inside = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    components: list[list[int]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[int, Iterator[int]]] = [(root, iter(deps[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in inside:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(deps[nxt])))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    components.sort(key=lambda c: c[0])
    return components


def shortest_cycle(start: int, component: list[int], deps: list[list[int]]) -> list[int]:
    """The shortest cycle through ``start``, in run direction: each step feeds the next."""
    inside = set(component)
    # Breadth-first along dependencies until some ``node`` depends on ``start``. Walking
    # back up the parents from ``node`` lists the steps in run direction, ending at start.
    parent: dict[int, int] = {start: start}
    queue = [start]
    for node in queue:
        for d in deps[node]:
            if d == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [start, *path[:-1]]
            if d in inside and d not in parent:
                parent[d] = node
                queue.append(d)
    return [start]  # unreachable for a real component of size >= 2


class Ancestors:
    """Answers "does step k (transitively) depend on step t?" for referenced steps t only.

    Bit sets over the referenced steps, filled in run order: O(E) big-int ORs whose
    width is the number of distinct referenced steps, usually tiny. Steps outside
    the order (in or after a cycle, or duplicates) fall back to a search.
    """

    def __init__(
        self,
        deps: list[list[int]],
        order: list[int],
        refs: list[list[Reference]],
        first: dict[str, int],
    ) -> None:
        self.deps = deps
        targets = {first[r.step] for step_refs in refs for r in step_refs if r.step in first}
        self.bit = {t: 1 << n for n, t in enumerate(targets)}
        self.sets: dict[int, int] = {}
        for k in order:
            acc = 0
            for d in deps[k]:
                acc |= self.sets[d] | self.bit.get(d, 0)
            self.sets[k] = acc

    def has(self, k: int, target: int) -> bool:
        if k in self.sets:
            return bool(self.sets[k] & self.bit[target])
        seen = {k}
        queue = [k]
        for node in queue:
            for d in self.deps[node]:
                if d == target:
                    return True
                if d not in seen:
                    seen.add(d)
                    queue.append(d)
        return False

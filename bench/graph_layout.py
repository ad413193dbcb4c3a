"""The plan graph's own layered layout (``runs/graph.py``) against dagre, on the same plans.

For each plan (the demo plans in ``runs/demo/plans`` and two generated 300-step plans,
the most the pages draw) it prints, for both layouts:

- layout time: ``runs.graph.layout`` in this Python process (median of ``--repeat``
  calls, plus the SVG markup the page builds from it), and ``dagre.layout`` in Chromium
  through Playwright (median of ``--repeat`` calls, ``performance.now()``), plus the
  time Chromium takes to parse and run the vendored ``dagre.min.js`` once;
- crossings: pairs of edges that cross, measured the same way for both in the browser
  (each edge sampled as a polyline: the SVG path of ``runs/graph.py`` with
  ``getPointAtLength``, dagre's own edge points), edges sharing a step left out;
- edges through boxes: an edge passing through a step's box that is not one of its ends;
- width x height of the drawing, with the same node size and gaps for both.

    .venv/bin/python bench/graph_layout.py
    .venv/bin/python bench/graph_layout.py --repeat 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runs.graph import (  # noqa: E402
    LAYER_GAP,
    NODE_HEIGHT,
    NODE_WIDTH,
    ROW_GAP,
    layout,
)

DAGRE = ROOT / "static" / "vendor" / "dagre" / "dagre.min.js"
CHROMIUM = "/usr/bin/chromium"
Plan = list[tuple[str, list[str]]]


def demo_plans() -> dict[str, Plan]:
    plans = {}
    for path in sorted((ROOT / "runs" / "demo" / "plans").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        plans[path.stem] = [(s["id"], list(s.get("depends_on") or [])) for s in doc["steps"]]
    return plans


def fan_plan(n: int = 300) -> Plan:
    """``bench/pages.py``'s graph run: ten roots, each step after two steps about ten back."""
    return [(f"g{p}", [] if p < 10 else [f"g{p - 10}", f"g{p - 9 + p % 7}"]) for p in range(n)]


def random_plan(n: int = 300, seed: int = 17) -> Plan:
    """A planner-like DAG: long step names, 1-3 dependencies among the previous 15 steps."""
    rng = random.Random(seed)
    verbs = ["fetch", "build", "test", "deploy", "verify", "notify", "migrate", "backup"]
    things = ["billing_service", "users_db", "search_index", "api_gateway", "cdn_cache"]
    plan: Plan = []
    for i in range(n):
        key = f"{rng.choice(verbs)}_{rng.choice(things)}_{i}"
        pool = [k for k, _ in plan[-15:]]
        deps = rng.sample(pool, k=min(len(pool), rng.randint(1, 3))) if i % 25 else []
        plan.append((key, deps))
    return plan


def python_layout(plan: Plan, repeat: int) -> tuple[float, dict[str, Any]]:
    """Median milliseconds of ``layout`` and the drawing as the browser measures it."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        graph = layout(plan)
        times.append((time.perf_counter() - start) * 1000)
    drawing = {
        "width": graph.width,
        "height": graph.height,
        "nodes": [
            {"key": n.key, "x": n.x, "y": n.y, "w": n.width, "h": n.height} for n in graph.nodes
        ],
        "edges": [{"s": e.source, "t": e.target, "path": e.path} for e in graph.edges],
    }
    return statistics.median(times), drawing


MEASURE_JS = """
([plan, py, repeat, size]) => {
  const SVG = "http://www.w3.org/2000/svg";
  function dagreLayout() {
    const g = new dagre.graphlib.Graph();
    g.setGraph({rankdir: "LR", ranksep: size.layerGap, nodesep: size.rowGap, marginx: 8, marginy: 8});
    g.setDefaultEdgeLabel(() => ({}));
    const keys = new Set(plan.map(([k]) => k));
    for (const [k] of plan) g.setNode(k, {width: size.w, height: size.h});
    for (const [k, deps] of plan) for (const d of new Set(deps)) if (keys.has(d) && d !== k) g.setEdge(d, k);
    dagre.layout(g);
    return g;
  }
  const times = [];
  let g;
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    g = dagreLayout();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const dg = {
    width: g.graph().width, height: g.graph().height,
    nodes: g.nodes().map(k => { const n = g.node(k); return {key: k, x: n.x - n.width / 2, y: n.y - n.height / 2, w: n.width, h: n.height}; }),
    edges: g.edges().map(e => ({s: e.v, t: e.w, points: g.edge(e).points.map(p => [p.x, p.y])})),
  };
  const svg = document.createElementNS(SVG, "svg");
  document.body.appendChild(svg);
  function sample(d) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.appendChild(path);
    const len = path.getTotalLength();
    const pts = [];
    for (let i = 0; i <= 32; i++) { const p = path.getPointAtLength(len * i / 32); pts.push([p.x, p.y]); }
    path.remove();
    return pts;
  }
  function cross(p, q, r, s) {
    const o = (a, b, c) => (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]);
    const d1 = o(r, s, p), d2 = o(r, s, q), d3 = o(p, q, r), d4 = o(p, q, s);
    return ((d1 > 0 && d2 < 0) || (d1 < 0 && d2 > 0)) && ((d3 > 0 && d4 < 0) || (d3 < 0 && d4 > 0));
  }
  function polylinesCross(a, b) {
    for (let i = 1; i < a.length; i++) for (let j = 1; j < b.length; j++)
      if (cross(a[i - 1], a[i], b[j - 1], b[j])) return true;
    return false;
  }
  function inBox(pt, n) {
    return pt[0] > n.x + 1 && pt[0] < n.x + n.w - 1 && pt[1] > n.y + 1 && pt[1] < n.y + n.h - 1;
  }
  function measure(drawing, lines) {
    let crossings = 0, through = 0;
    const edges = drawing.edges;
    for (let i = 0; i < edges.length; i++) for (let j = i + 1; j < edges.length; j++) {
      const a = edges[i], b = edges[j];
      if (a.s === b.s || a.s === b.t || a.t === b.s || a.t === b.t) continue;
      if (polylinesCross(lines[i], lines[j])) crossings++;
    }
    edges.forEach((e, i) => {
      // Densify each polyline so a long straight segment cannot jump over a box.
      const pts = [];
      const line = lines[i];
      for (let k = 1; k < line.length; k++) for (let t = 0; t < 8; t++)
        pts.push([line[k - 1][0] + (line[k][0] - line[k - 1][0]) * t / 8, line[k - 1][1] + (line[k][1] - line[k - 1][1]) * t / 8]);
      for (const n of drawing.nodes) if (n.key !== e.s && n.key !== e.t && pts.some(p => inBox(p, n))) through++;
    });
    return {crossings, through, width: Math.round(drawing.width), height: Math.round(drawing.height)};
  }
  const dagreFigures = measure(dg, dg.edges.map(e => e.points));
  const pyFigures = measure(py, py.edges.map(e => sample(e.path)));
  return {dagre_ms: times[Math.floor(times.length / 2)], dagre: dagreFigures, python: pyFigures};
}
"""
SIZE = {"layerGap": LAYER_GAP, "rowGap": ROW_GAP, "w": NODE_WIDTH, "h": NODE_HEIGHT}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "plannerweb.settings")
    from playwright.sync_api import sync_playwright

    plans = {**demo_plans(), "fan-300": fan_plan(), "random-300": random_plan()}
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, repeat {args.repeat}"
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page()
        page.set_content("<!doctype html><body></body>")
        load = page.evaluate(
            "src => { const t0 = performance.now(); window.dagre = new Function(src + ';return dagre;')();"
            " return performance.now() - t0; }",
            DAGRE.read_text(),
        )
        print(
            f"# dagre.min.js {DAGRE.stat().st_size} bytes, parse+run once in Chromium {load:.1f} ms "
            f"(Chromium {browser.version})"
        )
        header = (
            "plan",
            "steps",
            "edges",
            "layout ms py/dagre",
            "crossings py/dagre",
            "through boxes py/dagre",
            "w x h py",
            "w x h dagre",
        )
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for name, plan in plans.items():
            py_ms, drawing = python_layout(plan, args.repeat)
            fig = page.evaluate(MEASURE_JS, [plan, drawing, args.repeat, SIZE])
            p, d = fig["python"], fig["dagre"]
            print(
                f"| {name} | {len(plan)} | {len(drawing['edges'])} "
                f"| {py_ms:.2f} / {fig['dagre_ms']:.2f} | {p['crossings']} / {d['crossings']} "
                f"| {p['through']} / {d['through']} | {p['width']} x {p['height']} "
                f"| {d['width']} x {d['height']} |"
            )
        browser.close()
    print(json.dumps({"note": "crossings = pairs of edges without a shared step that cross"}))


if __name__ == "__main__":
    main()

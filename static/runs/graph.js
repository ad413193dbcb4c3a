// The plan graph's view: pan and zoom by changing the SVG's viewBox, and labels kept inside
// their boxes. Works for every figure[data-graph] on the page, including graphs that live
// updates swap in later (a MutationObserver sets those up).
(() => {
  if (window.plannerGraph) return; // the include may load this more than once
  const MIN_SCALE = 0.1; // or less, down to what fits the whole drawing
  const MAX_SCALE = 4;
  const STEP = 1.25;
  const PAN = 60; // px of screen per arrow key press
  const MAX_HEIGHT = 520; // px: taller graphs are panned or zoomed, not scrolled
  // Each graph's view by its place on the page: a live re-render keeps the reader's zoom.
  const views = new Map();

  function setUp(figure) {
    if (figure.dataset.graphReady) return;
    const svg = figure.querySelector("svg");
    if (!svg) return;
    figure.dataset.graphReady = "true";
    const box = svg.viewBox.baseVal;
    const full = { width: box.width, height: box.height };
    const place = [...document.querySelectorAll("figure[data-graph]")].indexOf(figure);
    const view = views.get(place) || { x: 0, y: 0, scale: 1 };
    views.set(place, view);
    fitLabels(svg);
    svg.setAttribute("tabindex", "0");
    svg.setAttribute(
      "aria-label",
      `${svg.getAttribute("aria-label")}; arrow keys pan, + and − zoom, 0 fits, 1 resets`,
    );
    figure.classList.add("graph-live");
    figure.querySelector(".graph-tools")?.removeAttribute("hidden");

    function size() {
      const width = Math.max(120, figure.clientWidth - 14);
      const height = Math.min(full.height, MAX_HEIGHT);
      return { width, height };
    }

    function apply() {
      const { width, height } = size();
      svg.setAttribute("width", String(width));
      svg.setAttribute("height", String(height));
      const w = width / view.scale;
      const h = height / view.scale;
      svg.setAttribute("viewBox", `${round(view.x)} ${round(view.y)} ${round(w)} ${round(h)}`);
      const readout = figure.querySelector("[data-graph-readout]");
      if (readout) readout.textContent = `${Math.round(view.scale * 100)}%`;
      figure.dataset.graphScale = String(view.scale);
    }

    function fitScale() {
      const { width, height } = size();
      return Math.min(width / full.width, height / full.height, 1);
    }

    function zoomAt(factor, sx, sy) {
      // Keep the drawing's point under the screen point (sx, sy) where it is.
      const scale = clamp(view.scale * factor, Math.min(MIN_SCALE, fitScale()), MAX_SCALE);
      view.x += sx / view.scale - sx / scale;
      view.y += sy / view.scale - sy / scale;
      view.scale = scale;
      apply();
    }

    function zoomCentre(factor) {
      const { width, height } = size();
      zoomAt(factor, width / 2, height / 2);
    }

    function fit() {
      const { width, height } = size();
      view.scale = fitScale();
      view.x = -(width / view.scale - full.width) / 2;
      view.y = -(height / view.scale - full.height) / 2;
      apply();
    }

    function reset() {
      Object.assign(view, { x: 0, y: 0, scale: 1 });
      apply();
    }

    function pan(dx, dy) {
      view.x -= dx / view.scale;
      view.y -= dy / view.scale;
      apply();
    }

    figure.addEventListener("click", (event) => {
      const button = event.target.closest("[data-graph-zoom]");
      if (!button) return;
      const action = button.dataset.graphZoom;
      if (action === "in") zoomCentre(STEP);
      else if (action === "out") zoomCentre(1 / STEP);
      else if (action === "fit") fit();
      else reset();
    });

    svg.addEventListener(
      "wheel",
      (event) => {
        event.preventDefault();
        const rect = svg.getBoundingClientRect();
        // Pinch on a touchpad arrives as a wheel event with ctrlKey and small deltas.
        const factor = Math.exp(-event.deltaY * (event.ctrlKey ? 0.01 : 0.0015));
        zoomAt(factor, event.clientX - rect.left, event.clientY - rect.top);
      },
      { passive: false },
    );

    svg.addEventListener("keydown", (event) => {
      const keys = {
        ArrowLeft: () => pan(PAN, 0),
        ArrowRight: () => pan(-PAN, 0),
        ArrowUp: () => pan(0, PAN),
        ArrowDown: () => pan(0, -PAN),
        "+": () => zoomCentre(STEP),
        "=": () => zoomCentre(STEP),
        "-": () => zoomCentre(1 / STEP),
        0: fit,
        1: reset,
      };
      const action = keys[event.key];
      if (!action || event.altKey || event.ctrlKey || event.metaKey) return;
      event.preventDefault();
      action();
    });

    // Drag with one pointer pans; two pointers (touch) pinch-zoom about their middle.
    const pointers = new Map();
    let pinch = null;
    svg.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      svg.setPointerCapture(event.pointerId);
      pointers.set(event.pointerId, [event.clientX, event.clientY]);
      figure.classList.add("graph-dragging");
      pinch = pointers.size === 2 ? spread() : null;
    });
    svg.addEventListener("pointermove", (event) => {
      const last = pointers.get(event.pointerId);
      if (!last) return;
      const now = [event.clientX, event.clientY];
      pointers.set(event.pointerId, now);
      if (pointers.size === 1) {
        pan(now[0] - last[0], now[1] - last[1]);
      } else if (pinch && pointers.size === 2) {
        const next = spread();
        const rect = svg.getBoundingClientRect();
        zoomAt(next.distance / pinch.distance, next.x - rect.left, next.y - rect.top);
        pinch = next;
      }
    });
    const release = (event) => {
      pointers.delete(event.pointerId);
      pinch = null;
      if (!pointers.size) figure.classList.remove("graph-dragging");
    };
    svg.addEventListener("pointerup", release);
    svg.addEventListener("pointercancel", release);

    function spread() {
      const [a, b] = [...pointers.values()];
      return {
        distance: Math.max(1, Math.hypot(a[0] - b[0], a[1] - b[1])),
        x: (a[0] + b[0]) / 2,
        y: (a[1] + b[1]) / 2,
      };
    }

    new ResizeObserver(() => apply()).observe(figure);
    apply();
  }

  // The server cuts labels by an estimate of the font's widths; the browser's font decides.
  function fitLabels(svg) {
    for (const label of svg.querySelectorAll("g.node text.label")) {
      const rect = label.parentNode.querySelector("rect");
      const room = rect.width.baseVal.value - label.querySelector("tspan")?.x.baseVal.getItem(0).value - 6;
      const lines = label.querySelectorAll("tspan");
      lines.forEach((line, i) => {
        let text = line.textContent;
        let cut = false;
        while (text.length > 1 && line.getComputedTextLength() > room) {
          text = text.slice(0, -1);
          cut = true;
          line.textContent = `${text.replace(/…$/, "")}…`;
        }
        if (cut && i < lines.length - 1) line.textContent = `${text.replace(/…$/, "")}…`;
      });
    }
  }

  function clamp(value, low, high) {
    return Math.min(high, Math.max(low, value));
  }

  function round(value) {
    return Math.round(value * 100) / 100;
  }

  function setUpAll(root) {
    root.querySelectorAll?.("figure[data-graph]").forEach(setUp);
  }

  window.plannerGraph = { setUpAll };
  const start = () => {
    setUpAll(document);
    new MutationObserver((changes) => {
      for (const change of changes) {
        for (const node of change.addedNodes) {
          if (node.nodeType !== 1) continue;
          if (node.matches("figure[data-graph]")) setUp(node);
          else setUpAll(node);
        }
      }
    }).observe(document.body, { childList: true, subtree: true });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();

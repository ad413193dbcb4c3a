// Live run page: follows ws/runs/<id>/?after=<seq>, appends transcript rows, updates the plan
// graph, step rows and progress in place, and on reconnect asks for what it missed from its
// last seq. A message holds one event ({"type": "event"}) or several consecutive ones
// ({"type": "events", "events": [...]}). Each seq is applied once: older or repeated ones
// are dropped, a gap resyncs.
(() => {
  "use strict";
  const configElement = document.getElementById("run-live-config");
  if (!configElement || !window.plannerweb) return;
  const config = JSON.parse(configElement.textContent);
  const runTerminal = new Set(config.runTerminal);
  const stepFinished = new Set(config.stepFinished);
  const transcript = document.querySelector("#transcript tbody");
  // Step events kept so a re-rendered step table can be brought up to date.
  const stepEvents = [];
  let lastSeq = config.lastSeq;
  let finished = config.finished;
  let live = null;

  if (finished) return; // nothing will change any more

  function apply(event) {
    if (event.seq <= lastSeq) return; // already on the page
    if (event.seq > lastSeq + 1) {
      live.reconnect(); // never skip one: fetch from lastSeq again
      return;
    }
    lastSeq = event.seq;
    appendRow(event);
    const p = event.payload || {};
    if (event.kind === "step.status") {
      stepEvents.push(event);
      if (!updateStep(p, event.at)) refreshLive(); // a step this page does not show yet
      updateProgress();
    } else if (event.kind === "step.lock_waiting") {
      showLockWait(p.step_id, event.summary);
    } else if (event.kind === "step.lock_acquired") {
      showLockWait(p.step_id, "");
    } else if (event.kind === "run.status") {
      updateRun(p);
    } else if (event.kind === "plan.created" || event.kind.startsWith("review.")) {
      refreshLive(); // new plan version (new steps, new graph) or a review item opened/closed
    }
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function clock(iso) {
    const time = new Date(iso);
    return Number.isNaN(time.getTime()) ? "" : time.toISOString().slice(11, 19);
  }

  function appendRow(event) {
    if (!transcript) return;
    const tr = document.createElement("tr");
    tr.dataset.seq = event.seq;
    tr.className = "new";
    const code = document.createElement("code");
    code.textContent = event.kind;
    const kind = cell("");
    kind.appendChild(code);
    tr.append(
      cell(String(event.seq), "num"),
      cell(clock(event.at)),
      cell(event.role),
      kind,
      cell(event.summary), // the server's line (runs.events), as the page renders it
    );
    transcript.appendChild(tr);
  }

  function details(label, text, className, open) {
    const box = document.createElement("details");
    if (className) box.className = className;
    box.open = Boolean(open);
    const head = document.createElement("summary");
    head.textContent = label;
    const pre = document.createElement("pre");
    pre.textContent = text;
    box.append(head, pre);
    return box;
  }

  // Returns false when the page has no row for the step.
  function updateStep(p, at) {
    const row = document.querySelector(`tr[data-step-id="${p.step_id}"]`);
    if (!row) return false;
    const mark = config.marks[p.to_status] || "?";
    row.dataset.status = p.to_status;
    const status = row.querySelector("[data-step-status]");
    if (status) {
      status.className = `step-status status-${p.to_status}`;
      status.querySelector(".mark").textContent = mark;
      status.querySelector(".label").textContent = p.to_status;
    }
    const node = document.querySelector(`g[data-node-step-id="${p.step_id}"]`);
    if (node) {
      node.setAttribute("class", `node status-${p.to_status}`);
      node.querySelector(".mark").textContent = mark;
    }
    const attempts = row.querySelector("[data-step-attempts]");
    if (attempts && p.attempt) attempts.textContent = p.attempt;
    if (p.to_status !== "pending") row.querySelector("[data-step-lock]")?.remove();
    if (p.to_status === "running" && p.from_status !== "running") {
      row.dataset.startedAt = at;
      setText(row, "[data-step-started]", clock(at));
      setText(row, "[data-step-finished]", "—");
      setText(row, "[data-step-took]", "—");
    } else if (stepFinished.has(p.to_status) && p.from_status === "running") {
      setText(row, "[data-step-finished]", clock(at));
      const started = Date.parse(row.dataset.startedAt || "");
      const took = (Date.parse(at) - started) / 1000;
      if (Number.isFinite(took)) setText(row, "[data-step-took]", `${took.toFixed(2)} s`);
    }
    const output = row.querySelector("[data-step-result]");
    if (output && (p.error || (p.result !== null && p.result !== undefined))) {
      output.replaceChildren();
      if (p.error) output.append(details("error", p.error, "error", p.to_status === "failed"));
      if (p.result !== null && p.result !== undefined) {
        output.append(details("result", JSON.stringify(p.result, null, 2)));
      }
    }
    return true;
  }

  // A step waiting for a resource lock says for which and who holds it; "" clears it.
  function showLockWait(stepId, summary) {
    const status = document.querySelector(`tr[data-step-id="${stepId}"] [data-step-status]`);
    if (!status) return;
    let line = status.querySelector("[data-step-lock]");
    if (!summary) {
      if (line) line.remove();
      return;
    }
    if (!line) {
      line = document.createElement("div");
      line.className = "muted lock-wait";
      line.dataset.stepLock = "";
      status.append(line);
    }
    line.textContent = summary.slice(summary.indexOf("waiting for lock"));
  }

  function setText(root, selector, text) {
    const element = root.querySelector(selector);
    if (element) element.textContent = text;
  }

  function updateProgress() {
    const rows = [...document.querySelectorAll('tr[data-step-id][data-phase="main"]')];
    const done = rows.filter((r) => stepFinished.has(r.dataset.status)).length;
    const text = document.querySelector("[data-progress]");
    if (text) text.textContent = `${done}/${rows.length}`;
    const bar = document.querySelector("[data-progress-bar]");
    if (bar) {
      bar.max = rows.length;
      bar.value = done;
    }
  }

  function updateRun(p) {
    const badge = document.querySelector("[data-run-status]");
    if (badge) {
      badge.textContent = p.to_status;
      badge.className = `badge status-${p.to_status}`;
    }
    if (runTerminal.has(p.to_status)) {
      finished = true;
      const reason = document.querySelector("[data-stop-reason]");
      if (reason && p.reason) reason.textContent = p.reason;
      document.querySelector("[data-cancel-form]")?.remove();
      live.stop("finished");
    }
  }

  // Re-render graph, steps and plan versions from the server, then replay the step events
  // newer than the seq the server rendered them at.
  let refreshing = null;
  let refreshAgain = false;
  function refreshLive() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    const target = document.getElementById("run-live");
    if (!target || !window.htmx) return;
    refreshing = htmx
      .ajax("GET", `/runs/${config.run}/live/`, { target, swap: "outerHTML" })
      .then(() => {
        const fresh = document.getElementById("run-live");
        const renderedAt = Number(fresh?.dataset.liveSeq || 0);
        for (const event of stepEvents) {
          if (event.seq > renderedAt) updateStep(event.payload, event.at);
        }
        updateProgress();
      })
      .finally(() => {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refreshLive();
        }
      });
  }

  live = window.plannerweb.liveSocket({
    path: () => `/ws/runs/${config.run}/?after=${lastSeq}`,
    heartbeatSeconds: config.heartbeatSeconds,
    onMessage: (data) => {
      if (data.type === "event") {
        apply(data);
      } else if (data.type === "events") {
        // Consecutive events in one message (one commit, or a replay): applied in order, and
        // a gap stops the batch there (apply has asked for a reconnect from lastSeq).
        for (const event of data.events) {
          if (event.seq > lastSeq + 1) {
            live.reconnect();
            break;
          }
          apply(event);
        }
      }
    },
  });
})();

// Live run page: follows ws/runs/<id>/?after=<seq>, appends transcript rows, updates step and
// run status cells, and reconnects with backoff from the last seq it has.
(() => {
  "use strict";
  const configElement = document.getElementById("run-live-config");
  if (!configElement) return;
  const config = JSON.parse(configElement.textContent);
  const runTerminal = new Set(config.runTerminal);
  const stepFinished = new Set(config.stepFinished);
  const stateBadge = document.querySelector("[data-live-state]");
  const transcript = document.querySelector("#transcript tbody");
  let lastSeq = config.lastSeq;
  let finished = config.finished;
  let delay = 500;
  let socket = null;
  let reloadTimer = null;

  if (finished) return; // nothing will change any more

  function setState(state) {
    if (!stateBadge) return;
    stateBadge.hidden = false;
    stateBadge.textContent = state;
    stateBadge.className = `live-state ${state}`;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${config.run}/?after=${lastSeq}`);
    socket.onopen = () => {
      delay = 500;
      setState("live");
    };
    socket.onmessage = (message) => {
      const data = JSON.parse(message.data);
      if (data.type === "event") apply(data);
    };
    socket.onclose = (event) => {
      if (finished) return;
      if (event.code === 4403 || event.code === 4404) {
        setState("offline");
        return;
      }
      setState("reconnecting");
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }

  function apply(event) {
    if (event.seq <= lastSeq) return; // already on the page
    lastSeq = event.seq;
    appendRow(event);
    const p = event.payload || {};
    if (event.kind === "step.status") updateStep(p);
    else if (event.kind === "run.status") updateRun(p);
    else if (event.kind === "plan.created" && p.valid) reloadSoon(); // a new plan: new step rows
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function appendRow(event) {
    if (!transcript) return;
    const tr = document.createElement("tr");
    tr.dataset.seq = event.seq;
    tr.className = "new";
    const time = new Date(event.at);
    const code = document.createElement("code");
    code.textContent = event.kind;
    const kind = cell("");
    kind.appendChild(code);
    tr.append(
      cell(String(event.seq), "num"),
      cell(Number.isNaN(time.getTime()) ? "" : time.toISOString().slice(11, 19)),
      cell(event.role),
      kind,
      cell(summary(event.kind, event.payload || {})),
    );
    transcript.appendChild(tr);
  }

  function updateStep(p) {
    const row = document.querySelector(`tr[data-step-id="${p.step_id}"]`);
    if (!row) {
      reloadSoon(); // a step this page does not show yet
      return;
    }
    row.dataset.status = p.to_status;
    const status = row.querySelector("[data-step-status]");
    if (status) {
      status.className = `step-status status-${p.to_status}`;
      status.querySelector(".mark").textContent = config.marks[p.to_status] || "?";
      status.querySelector(".label").textContent = p.to_status;
    }
    const attempts = row.querySelector("[data-step-attempts]");
    if (attempts && p.attempt) attempts.textContent = p.attempt;
    updateProgress();
  }

  function updateProgress() {
    const progress = document.querySelector("[data-progress]");
    if (!progress) return;
    const rows = [...document.querySelectorAll('tr[data-step-id][data-phase="main"]')];
    const done = rows.filter((r) => stepFinished.has(r.dataset.status)).length;
    progress.textContent = `${done}/${rows.length}`;
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
      setState("finished");
      if (socket) socket.close();
      reloadSoon(); // fill in results, durations and rollback outcomes
    }
  }

  function reloadSoon() {
    if (reloadTimer) return;
    reloadTimer = setTimeout(() => location.reload(), 1200);
  }

  // Mirrors runs.views.event_summary.
  function summary(kind, p) {
    const suffix = (text) => (text ? `: ${text}` : "");
    let text;
    switch (kind) {
      case "run.created":
        text = `task '${p.task}' submitted by ${p.submitted_by || "the system"}`;
        break;
      case "run.status":
        text = `run ${p.from_status} → ${p.to_status}${suffix(p.reason)}`;
        break;
      case "run.cancel_requested":
        text = `cancel requested by ${p.by || "the system"}`;
        break;
      case "plan.created": {
        const errors = p.errors || [];
        text = p.valid
          ? `plan v${p.version} (${p.source}): ${p.steps} steps`
          : `plan v${p.version} (${p.source}) is invalid: ${errors.length} problem(s)` +
            suffix(errors[0] && errors[0].message);
        break;
      }
      case "step.status": {
        const attempt = p.attempt > 1 ? ` (attempt ${p.attempt})` : "";
        text = `${p.step} ${p.from_status} → ${p.to_status}${attempt}${suffix(p.error || p.reason)}`;
        break;
      }
      case "step.retrying":
        text = `${p.step} retries (attempt ${p.attempt}) in ${p.delay_seconds}s${suffix(p.error)}`;
        break;
      default:
        text = JSON.stringify(p);
    }
    return text.length <= 200 ? text : `${text.slice(0, 199)}…`;
  }

  connect();
})();

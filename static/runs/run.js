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
      cell(summary(event.kind, event.payload || {})),
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

  // Mirrors runs.views.detail.event_summary.
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
      case "run.requeued":
        text = `run queued again${suffix(p.reason)}`;
        break;
      case "run.retried":
        text = p.new_run
          ? `retried from step ${p.step} as run ${p.new_run}`
          : `retry of run ${p.of_run} from step ${p.step}`;
        break;
      case "planner.decision":
        text = `planner ${p.planner} (${p.mode}) ${p.ok ? "produced a plan" : "gave up"}${suffix(p.detail)}`;
        break;
      case "planner.call":
        text =
          `${p.provider} ${p.model} call for ${p.purpose}: ${p.tokens_in || 0} tokens in, ` +
          `${p.tokens_out || 0} out, ${p.latency_ms || 0} ms${suffix(p.error || p.refusal)}`;
        break;
      case "plan.diff":
        text =
          `plan v${p.version} from v${p.parent_version}: ${(p.added || []).length} added, ` +
          `${(p.removed || []).length} removed, ${(p.changed || []).length} changed`;
        break;
      case "run.failure_report":
        text = `gave up after ${p.replans} replan(s)${suffix(p.reason)}`;
        break;
      default:
        text = kind.startsWith("review.") ? reviewSummary(kind, p, suffix) : JSON.stringify(p);
    }
    return text.length <= 200 ? text : `${text.slice(0, 199)}…`;
  }

  // Mirrors runs.views.detail._review_summary.
  const reviewKinds = {
    plan_approval: "plan approval",
    step_gate: "step gate",
    escalation: "escalation",
  };
  function reviewSummary(kind, p, suffix) {
    const item = `review ${p.item_id}`;
    const what = reviewKinds[p.review_kind || ""] || p.review_kind || "review";
    switch (kind) {
      case "review.opened": {
        let target = p.plan_version ? ` of plan v${p.plan_version}` : "";
        target += p.step ? ` at step ${p.step}` : "";
        const quorum =
          (p.required_approvals || 1) > 1 ? `, ${p.required_approvals} approvals needed` : "";
        return `${item} opened: ${what}${target}${quorum}${suffix(p.reason)}`;
      }
      case "review.assigned": {
        const by = p.by && p.by !== p.assignee ? ` by ${p.by}` : "";
        return `${item} assigned to ${p.assignee || "nobody"}${by}`;
      }
      case "review.approval":
        return `${item}: approval by ${p.by} (${p.approvals} of ${p.required})`;
      case "review.decided": {
        const plan = p.plan_version ? `, plan v${p.plan_version}` : "";
        return `${item} (${what}) ${p.status} by ${p.by || "the system"}${plan}${suffix(p.reason)}`;
      }
      default:
        return `${item}: ${kind}`;
    }
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

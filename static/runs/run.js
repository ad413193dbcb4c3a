// Live run page: follows ws/runs/<id>/?after=<seq>, appends transcript rows, updates the plan
// graph, step rows, progress and timeline in place, and on reconnect asks for what it missed
// from its last seq. It listens until the run is closed: final and with no open review item
// (an escalated run waits for a reviewer, who may resume it). A message holds one event ({"type": "event"}) or several consecutive ones
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
  // The newest run.status event, so a re-render older than it does not set the badge back.
  let runEvent = null;
  let lastSeq = config.lastSeq;
  let live = null;
  // Lock and gate waits, for the timeline: [{step, kind, start, end, label}].
  const waitsElement = () => document.getElementById("run-waits");
  let waits = waitsElement() ? JSON.parse(waitsElement().textContent) : [];

  drawTimeline();
  tickClocks();
  if (config.closed) return; // nothing will change any more
  const clockTimer = setInterval(tickClocks, 100);

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
      if (!waits.some((w) => w.step === p.step && w.kind === "lock" && !w.end)) {
        waits.push({ step: p.step, kind: "lock", start: event.at, end: null, label: `waiting for lock ${p.lock}` });
      }
    } else if (event.kind === "step.lock_acquired") {
      showLockWait(p.step_id, "");
      endWait((w) => w.step === p.step && w.kind === "lock", event.at);
    } else if (event.kind === "run.status") {
      runEvent = event;
      showRunStatus(p);
      refreshLive();
    } else if (event.kind === "plan.created" || event.kind.startsWith("review.")) {
      if (event.kind === "review.opened" && p.step) {
        waits.push({ step: p.step, kind: "gate", item: p.item_id, start: event.at, end: null, label: "waiting for a reviewer" });
      } else if (event.kind === "review.decided") {
        endWait((w) => w.kind === "gate" && w.item === p.item_id, event.at);
      }
      refreshLive(); // new plan version (new steps, new graph) or a review item opened/closed
    }
    drawTimeline();
  }

  function endWait(match, at) {
    for (const w of waits) if (!w.end && match(w)) w.end = at;
  }

  // Milliseconds since the epoch of an ISO time (the server writes microseconds; keep three).
  function ms(iso) {
    if (!iso) return NaN;
    return Date.parse(String(iso).replace(/(\.\d{3})\d+/, "$1"));
  }

  function elapsedText(seconds) {
    const s = Math.max(seconds, 0);
    const hours = Math.floor(s / 3600);
    const minutes = Math.floor((s % 3600) / 60);
    const secs = (s % 60).toFixed(3).padStart(6, "0");
    if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min ${secs} s`;
    if (minutes) return `${minutes} min ${secs} s`;
    return `${(s % 60).toFixed(3)} s`;
  }

  // Running steps and a running run show their elapsed time, ticking.
  function tickClocks() {
    const now = Date.now();
    for (const row of document.querySelectorAll('tr[data-step-id][data-status="running"]')) {
      const started = ms(row.dataset.startedAt);
      const took = row.querySelector("[data-step-took]");
      if (took && Number.isFinite(started)) took.textContent = `${elapsedText((now - started) / 1000)} …`;
    }
    const duration = document.querySelector("[data-run-duration][data-running-since]");
    if (duration) {
      const since = ms(duration.dataset.runningSince);
      if (Number.isFinite(since)) duration.textContent = `${elapsedText((now - since) / 1000)}, running`;
    }
    if (document.querySelector('tr[data-step-id][data-status="running"]') || waits.some((w) => !w.end)) {
      drawTimeline();
    }
  }

  // The timeline: a lane per step (rollback steps too), a bar from start to finish (to now
  // while running), hatched stretches for lock and gate waits; times to the millisecond.
  function drawTimeline() {
    const box = document.querySelector("[data-timeline-rows]");
    if (!box) return;
    const now = Date.now();
    const rows = [...document.querySelectorAll("tr[data-step-id]")];
    const lanes = rows.map((row) => ({
      key: row.dataset.stepKey,
      phase: row.dataset.phase,
      status: row.dataset.status,
      start: ms(row.dataset.startedAt),
      end: row.dataset.status === "running" ? now : ms(row.dataset.finishedAt),
    }));
    const laneWaits = waits.map((w) => ({ ...w, s: ms(w.start), e: w.end ? ms(w.end) : now }));
    const times = [];
    for (const l of lanes) if (Number.isFinite(l.start)) times.push(l.start, Number.isFinite(l.end) ? l.end : l.start);
    for (const w of laneWaits) if (Number.isFinite(w.s)) times.push(w.s, w.e);
    const figure = box.closest("[data-timeline]");
    if (!times.length) {
      box.textContent = "No step has started yet.";
      return;
    }
    const t0 = Math.min(...times);
    const span = Math.max(Math.max(...times) - t0, 1);
    const pct = (t) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
    const width = (a, b) => `${(Math.max(b - a, 0) / span * 100).toFixed(3)}%`;
    const parts = [];
    for (const lane of lanes) {
      const row = document.createElement("div");
      row.className = `tl-row phase-${lane.phase}`;
      row.dataset.tlStep = lane.key;
      row.dataset.status = lane.status;
      const label = document.createElement("span");
      label.className = "tl-label";
      label.textContent = (lane.phase === "rollback" ? "↺ " : "") + lane.key;
      const track = document.createElement("span");
      track.className = "tl-track";
      for (const w of laneWaits) {
        if (w.step !== lane.key || !Number.isFinite(w.s) || lane.phase === "rollback") continue;
        const wait = document.createElement("span");
        wait.className = `tl-wait tl-wait-${w.kind}`;
        wait.dataset.waitKind = w.kind;
        wait.style.left = pct(w.s);
        wait.style.width = width(w.s, w.e);
        wait.title = `${lane.key}: ${w.label}, ${elapsedText((w.e - w.s) / 1000)}${w.end ? "" : " so far"}`;
        track.append(wait);
      }
      const time = document.createElement("span");
      time.className = "tl-time";
      if (Number.isFinite(lane.start)) {
        const end = Number.isFinite(lane.end) ? lane.end : lane.start;
        const bar = document.createElement("span");
        bar.className = `tl-bar seg-${lane.status}`;
        bar.style.left = pct(lane.start);
        bar.style.width = width(lane.start, end);
        const took = elapsedText((end - lane.start) / 1000);
        bar.title = `${lane.key}: ${lane.status}, +${elapsedText((lane.start - t0) / 1000)} for ${took}`;
        track.append(bar);
        time.textContent = lane.status === "running" ? `${took} …` : took;
      } else {
        time.textContent = lane.status;
      }
      row.append(label, track, time);
      parts.push(row);
    }
    box.replaceChildren(...parts);
    const axis = figure.querySelector("[data-timeline-axis]");
    if (axis) axis.textContent = `0 → ${elapsedText(span / 1000)} from ${new Date(t0).toISOString().slice(11, 23)} UTC`;
  }

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function clock(iso) {
    const time = new Date(ms(iso));
    return Number.isNaN(time.getTime()) ? "" : time.toISOString().slice(11, 23);
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
      delete row.dataset.finishedAt;
      setText(row, "[data-step-started]", clock(at));
      setText(row, "[data-step-finished]", "—");
      setText(row, "[data-step-took]", "—");
    } else if (stepFinished.has(p.to_status) && p.from_status === "running") {
      row.dataset.finishedAt = at;
      setText(row, "[data-step-finished]", clock(at));
      const took = (ms(at) - ms(row.dataset.startedAt)) / 1000;
      setText(row, "[data-step-took]", Number.isFinite(took) ? `${took.toFixed(3)} s` : "—");
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

  // The progress bar by outcome: a segment per status of the main steps, as the server draws it
  // (runs/templatetags/outcomes.py), and the same finished/total count as the runs list.
  function updateProgress() {
    const rows = [...document.querySelectorAll('tr[data-step-id][data-phase="main"]')];
    const done = rows.filter((r) => stepFinished.has(r.dataset.status)).length;
    const text = document.querySelector("[data-progress]");
    if (text) text.textContent = `${done}/${rows.length}`;
    const bar = document.querySelector(".progress [data-outcome-bar]");
    if (!bar) return;
    const counts = new Map(config.outcomeOrder.map((s) => [s, 0]));
    for (const r of rows) counts.set(r.dataset.status, (counts.get(r.dataset.status) || 0) + 1);
    const segments = [];
    const words = [];
    for (const [status, n] of counts) {
      if (!n) continue;
      const seg = document.createElement("span");
      seg.className = `seg seg-${status}`;
      seg.dataset.outcome = status;
      seg.dataset.count = n;
      seg.style.flexGrow = n;
      segments.push(seg);
      words.push(`${n} ${status.replace("_", " ")}`);
    }
    bar.replaceChildren(...segments);
    const label = rows.length ? `${rows.length} step${rows.length === 1 ? "" : "s"}: ${words.join(", ")}` : "no steps";
    bar.setAttribute("aria-label", label);
    bar.title = label;
  }

  // A status change shows at once on the badge, then re-renders the live part: times, duration,
  // budgets, the cancel and retry forms and the review links come from the server; the page
  // stops listening once the re-rendered part says the run is closed.
  function showRunStatus(p) {
    const badge = document.querySelector("[data-run-status]");
    if (badge) {
      badge.textContent = p.to_status;
      badge.className = `badge status-${p.to_status}`;
    }
    if (runTerminal.has(p.to_status)) {
      const reason = document.querySelector("[data-stop-reason]");
      if (reason && p.reason) reason.textContent = p.reason;
      document.querySelector("[data-cancel]")?.remove();
      document.querySelector("[data-run-duration]")?.removeAttribute("data-running-since");
    }
  }

  function closeIfDone() {
    const section = document.getElementById("run-live");
    if (section?.dataset.runClosed !== "true") return;
    clearInterval(clockTimer);
    tickClocks();
    live.stop("finished");
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
    // What the operator was typing or choosing survives the re-render.
    const kept = [...target.querySelectorAll("[data-keep]")].map((e) => [e.dataset.keep, e.value]);
    refreshing = htmx
      .ajax("GET", `/runs/${config.run}/live/`, { target, swap: "outerHTML" })
      .then(() => {
        const fresh = document.getElementById("run-live");
        const renderedAt = Number(fresh?.dataset.liveSeq || 0);
        for (const event of stepEvents) {
          if (event.seq > renderedAt) updateStep(event.payload, event.at);
        }
        // A render begun before the last status change (its refresh follows) keeps the newer status.
        if (runEvent && runEvent.seq > renderedAt) showRunStatus(runEvent.payload);
        for (const [key, value] of kept) {
          const field = fresh?.querySelector(`[data-keep="${key}"]`);
          if (!field || !value) continue;
          if (field.options && ![...field.options].some((o) => o.value === value)) continue;
          field.value = value;
        }
        const fresher = waitsElement();
        if (fresher) {
          const served = JSON.parse(fresher.textContent);
          // Keep live-only waits the server had not written yet when it rendered.
          waits = served.concat(waits.filter((w) => !served.some((s) => s.step === w.step && s.kind === w.kind && ms(s.start) === ms(w.start))));
        }
        updateProgress();
        drawTimeline();
        tickClocks();
        closeIfDone();
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

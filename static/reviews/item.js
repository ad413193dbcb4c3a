// Review item page: while the plan editor holds changes that are not saved, say so. Approve
// approves the stored version (the server refuses it while the editor differs); the edit must be
// saved first, or saved and approved at once.
(() => {
  "use strict";
  const editor = document.querySelector("[data-plan-editor]");
  if (!editor) return;
  const warning = document.querySelector("[data-unsaved-warning]");
  const approve = document.querySelector("[data-approve-button]");
  const label = approve ? approve.textContent : "";
  const normal = (text) => text.replace(/\r\n?/g, "\n");
  const stored = normal(editor.dataset.stored || "");
  const update = () => {
    const dirty = normal(editor.value) !== stored;
    if (warning) warning.hidden = !dirty;
    editor.toggleAttribute("data-unsaved", dirty);
    if (approve) {
      approve.textContent = dirty ? `${label} (save your edits first)` : label;
      approve.title = dirty
        ? "The editor holds unsaved changes: Save edited plan (or Save and approve) first."
        : "";
    }
  };
  editor.addEventListener("input", update);
  update();
})();

// Live preview: while the reviewer types, the edit's diff against the version under review (or
// why it cannot be saved) follows, from the server's preview, which saves nothing. Debounced;
// an answer to older text than the editor's is dropped.
(() => {
  "use strict";
  const editor = document.querySelector("[data-plan-editor][data-preview-url]");
  const target = document.querySelector("[data-live-preview]");
  if (!editor || !target) return;
  const form = editor.form;
  const token = form?.querySelector('input[name="csrfmiddlewaretoken"]')?.value || "";
  const normal = (text) => text.replace(/\r\n?/g, "\n");
  const stored = normal(editor.dataset.stored || "");
  const WAIT_MS = 350;
  let timer = 0;
  let asked = 0;
  let pending = null;
  const show = async () => {
    const text = editor.value;
    const mine = ++asked;
    pending?.abort();
    if (normal(text) === stored) {
      target.replaceChildren();
      target.removeAttribute("aria-busy");
      return;
    }
    pending = new AbortController();
    target.setAttribute("aria-busy", "true");
    try {
      const body = new URLSearchParams({ plan: text, csrfmiddlewaretoken: token });
      const response = await fetch(editor.dataset.previewUrl, {
        method: "POST",
        body,
        headers: { "HX-Request": "true", "X-CSRFToken": token },
        credentials: "same-origin",
        signal: pending.signal,
      });
      const html = await response.text();
      if (mine !== asked) return;
      if (response.ok || response.status === 422) target.innerHTML = html;
    } catch (error) {
      if (error.name !== "AbortError" && mine === asked) target.textContent = "Preview unavailable.";
    } finally {
      if (mine === asked) target.removeAttribute("aria-busy");
    }
  };
  editor.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(show, WAIT_MS);
  });
})();

// The decision panel: Approve stays disabled until every checklist item is ticked (the server
// refuses it anyway); the button says why.
(() => {
  "use strict";
  const boxes = [...document.querySelectorAll('[data-decision-form] input[name="checklist"]')];
  const approve = document.querySelector("[data-approve-button]");
  const saveApprove = document.querySelector("[data-save-approve-button]");
  if (!boxes.length || !approve) return;
  const hint = "Tick every checklist item first.";
  const update = () => {
    const done = boxes.every((b) => b.checked);
    for (const button of [approve, saveApprove]) {
      if (!button) continue;
      button.disabled = !done;
      if (!done) button.title = hint;
      else if (button.title === hint) button.title = "";
    }
  };
  for (const box of boxes) box.addEventListener("change", update);
  update();
})();

// Opened from the queue with a or r: the decision panel's first control, or the reason.
(() => {
  "use strict";
  const target =
    location.hash === "#reason"
      ? document.getElementById("reason")
      : location.hash === "#decide"
        ? document.querySelector("#decide input:not([type=hidden]), #decide textarea, #decide button:not([disabled])")
        : null;
  target?.focus();
})();

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

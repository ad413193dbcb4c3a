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

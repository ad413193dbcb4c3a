// The run page's cancel form: before cancelling, it asks when steps with side effects (tools
// not flagged read_only) have finished, naming them: a plain cancel leaves what they did in
// place, a cancel and roll back undoes it. The step rows are the live ones, so the list is
// what has finished by the time the button is pressed.
(() => {
  "use strict";
  // Delegated: the live page re-renders the form when the run's status changes.
  document.addEventListener("submit", (event) => {
    if (!event.target.matches("[data-cancel-form]")) return;
    const rollback = event.submitter && event.submitter.value === "1";
    const rows = document.querySelectorAll(
      'tr[data-phase="main"][data-status="succeeded"][data-read-only="false"]',
    );
    const done = Array.from(rows, (row) => row.dataset.stepKey);
    if (!done.length) return;
    const names = done.join(", ");
    const question = rollback
      ? `Cancel and roll back? The rollback undoes what these finished steps did: ${names}.`
      : `Cancel without rolling back? These finished steps have side effects that stay: ${names}.`;
    if (!window.confirm(question)) event.preventDefault();
  });
})();

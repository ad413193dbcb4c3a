// Runs list: follows ws/runs/ and refreshes the table when a run is created or changes status.
(() => {
  "use strict";
  window.plannerweb?.liveTable({
    configId: "runs-live-config",
    tableId: "runs-table",
    event: "runs-changed",
    path: "/ws/runs/",
    rowSelector: (id) => `tr[data-run-id="${id}"]`,
    changedIds: (data) => data.runs.map((run) => run.run),
  });
})();

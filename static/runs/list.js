// Runs list: follows ws/runs/ and re-fetches the table (with the page's filters) through htmx
// when a run is created or changes status; the rows that changed are highlighted.
(() => {
  "use strict";
  const config = document.getElementById("runs-live-config");
  if (!config || !window.plannerweb || !window.htmx) return;
  const heartbeatSeconds = JSON.parse(config.textContent);
  const changed = new Set();
  let timer = null;

  function refreshSoon() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const table = document.getElementById("runs-table");
      if (table) htmx.trigger(table, "runs-changed");
    }, 250);
  }

  document.body.addEventListener("htmx:afterSettle", () => {
    for (const id of changed) {
      document.querySelector(`#runs-table tr[data-run-id="${id}"]`)?.classList.add("changed");
    }
    changed.clear();
  });

  window.plannerweb.liveSocket({
    path: () => "/ws/runs/",
    heartbeatSeconds,
    onOpen: (again) => {
      if (again) refreshSoon(); // changes made while we were away
    },
    onMessage: (data) => {
      if (data.type !== "changed") return;
      for (const run of data.runs) changed.add(run.run);
      refreshSoon();
    },
  });
})();

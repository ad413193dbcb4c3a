// Review queue: follows ws/reviews/ and re-fetches the table (with the page's filters) through
// htmx when an item opens, is claimed or decided; the rows that changed are highlighted.
(() => {
  "use strict";
  const config = document.getElementById("reviews-live-config");
  if (!config || !window.plannerweb || !window.htmx) return;
  const heartbeatSeconds = JSON.parse(config.textContent);
  const changed = new Set();
  let timer = null;

  function refreshSoon() {
    if (timer) return;
    timer = setTimeout(() => {
      timer = null;
      const table = document.getElementById("reviews-table");
      if (table) htmx.trigger(table, "reviews-changed");
    }, 250);
  }

  document.body.addEventListener("htmx:afterSettle", () => {
    for (const id of changed) {
      document.querySelector(`#reviews-table tr[data-item-id="${id}"]`)?.classList.add("changed");
    }
    changed.clear();
  });

  window.plannerweb.liveSocket({
    path: () => "/ws/reviews/",
    heartbeatSeconds,
    onOpen: (again) => {
      if (again) refreshSoon(); // changes made while we were away
    },
    onMessage: (data) => {
      if (data.type !== "changed") return;
      for (const item of data.items) changed.add(item.item);
      refreshSoon();
    },
  });
})();

// Review queue: follows ws/reviews/ and refreshes the table when an item opens or changes.
(() => {
  "use strict";
  window.plannerweb?.liveTable({
    configId: "reviews-live-config",
    tableId: "reviews-table",
    event: "reviews-changed",
    path: "/ws/reviews/",
    rowSelector: (id) => `tr[data-item-id="${id}"]`,
    changedIds: (data) => data.items.map((item) => item.item),
  });
})();

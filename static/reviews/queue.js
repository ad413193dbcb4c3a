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

// Keyboard triage: j / k move down / up the items, o (or Enter) opens the selected one,
// a opens it at its decision panel, r opens it with the reason field focused (to reject).
(() => {
  "use strict";
  let index = -1;
  const rows = () => [...document.querySelectorAll("#reviews-table tbody tr[data-item-id]")];
  const select = (next) => {
    const all = rows();
    if (!all.length) return;
    index = Math.max(0, Math.min(all.length - 1, next));
    all.forEach((row, i) => row.setAttribute("aria-selected", String(i === index)));
    all[index].querySelector("a")?.focus();
  };
  const open = (hash) => {
    const row = rows()[index];
    if (row) location.assign(`/reviews/${row.dataset.itemId}/${hash}`);
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, select, textarea, [contenteditable]")) return;
    const key = event.key;
    if (key === "j") select(index + 1);
    else if (key === "k") select(index - 1);
    else if (key === "o" && index >= 0) open("");
    else if (key === "a" && index >= 0) open("#decide");
    else if (key === "r" && index >= 0) open("#reason");
    else return;
    event.preventDefault();
  });
})();

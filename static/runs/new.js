// The new-run page: options a planner does not take are hidden (and not sent) for it,
// and a planner without its key or URL says what to set as soon as it is chosen.
(function () {
  "use strict";
  // A refused mapping by a model (422: not configured here; 503: its server cannot be
  // reached) still shows its reason in the check.
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    const target = event.detail.target;
    const status = event.detail.xhr.status;
    if ((status === 422 || status === 503) && target && target.id === "plan-check") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();

(function () {
  "use strict";
  const select = document.getElementById("id_task-planner");
  if (!select) return;
  const groups = document.querySelectorAll("[data-model-option]");
  const note = document.querySelector("[data-model-options-note]");
  const notices = document.querySelectorAll("[data-unavailable-planner]");

  function update() {
    const option = select.options[select.selectedIndex];
    const takesModel = Boolean(option && option.dataset.modelOptions);
    groups.forEach(function (group) {
      group.hidden = !takesModel;
      group.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !takesModel;
      });
    });
    if (note) note.hidden = takesModel;
    notices.forEach(function (notice) {
      notice.hidden = notice.dataset.unavailablePlanner !== select.value;
    });
    select.setAttribute("aria-invalid", option && option.dataset.unavailable ? "true" : "false");
  }

  select.addEventListener("change", update);
  update();
})();

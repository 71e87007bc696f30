// The dashboard's only script: bar widths, and the overview's live counters over SSE.
// No inline script anywhere (the Content-Security-Policy forbids it); without this file every
// page still works, only the counters stop updating.
"use strict";

document.querySelectorAll("[data-width]").forEach(function (el) {
  el.style.width = Math.max(2, Number(el.dataset.width)) + "%";
});

(function () {
  var live = document.querySelectorAll("[data-live]");
  if (!live.length || !window.EventSource) return;
  var prefix = document.body.dataset.prefix || "";
  var source = new EventSource(prefix + "/live");
  source.addEventListener("overview", function (e) {
    var figures;
    try { figures = JSON.parse(e.data); } catch (_) { return; }
    live.forEach(function (el) {
      var value = figures[el.dataset.live];
      // textContent, never innerHTML: the figures are text.
      if (value !== undefined && value !== null) el.textContent = value;
    });
    document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
  });
})();

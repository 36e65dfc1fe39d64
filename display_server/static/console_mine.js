// The console's "Kết quả của tôi": the logged-in officer's own figures for this month, quarter and
// year (GET /api/reports/officer names nobody: the server answers with the session's own officer).
// Asked again when the page comes back into view, so a console left open all day stays current.
"use strict";
(function () {
  const fmt = new Intl.NumberFormat("vi-VN", { maximumFractionDigits: 1 });

  function value(figures, key) {
    if (key.startsWith("ratings.")) return figures.ratings[Number(key.slice(8))];
    return figures[key];
  }

  function draw(body) {
    for (const p of body.periods) {
      const head = document.querySelector('#mine th[data-kind="' + p.kind + '"]');
      if (head) head.title = p.label;
      for (const cell of document.querySelectorAll('#mine td[data-kind="' + p.kind + '"]')) {
        const v = value(p.figures, cell.dataset.figure);
        cell.textContent = v === null || v === undefined ? "—" : fmt.format(v);
      }
    }
    const status = document.getElementById("mine-status");
    status.textContent = body.periods.some(function (p) { return p.pending; }) ? status.dataset.pending : "";
  }

  async function load() {
    const status = document.getElementById("mine-status");
    try {
      const resp = await fetch("/api/reports/officer", { credentials: "same-origin" });
      const body = await resp.json();
      if (!body.ok) throw new Error(body.error && body.error.message);
      draw(body);
      document.getElementById("mine").dataset.loaded = "1";
    } catch (e) {
      status.textContent = status.dataset.error;
    }
  }

  document.addEventListener("DOMContentLoaded", load);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) load(); });
})();

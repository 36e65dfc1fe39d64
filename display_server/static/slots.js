// The day and slot picker of /dat-lich and of a booking's own page.
"use strict";
window.QmsSlots = (function () {
  const P = window.QmsPages, $ = P.$;

  function bind(url, T, onChange) {
    const state = { field: null, days: [], day: null, slot: null };

    function drawSlots() {
      const box = $("slots");
      box.replaceChildren();
      const day = state.days.find(function (d) { return d.day === state.day; });
      for (const s of day ? day.slots : []) {
        const b = P.el("button", "slot-button", s.slot);
        b.type = "button";
        b.dataset.slot = s.slot;
        b.append(P.el("small", "", P.fmt(T.booking_free, { n: s.free })));
        b.disabled = !(s.free > 0);
        b.setAttribute("aria-pressed", s.slot === state.slot ? "true" : "false");
        b.addEventListener("click", function () { state.slot = s.slot; drawSlots(); onChange(); });
        box.append(b);
      }
      $("slots-info").textContent = state.days.length ? (state.slot ? "" : T.booking_choose_slot) : T.booking_no_slots;
    }

    async function load(field) {
      state.field = field;
      let body = { ok: false };
      try {
        const resp = await fetch(url + (url.includes("?") ? "&" : "?") + "field=" + encodeURIComponent(field));
        body = await resp.json();
      } catch (e) { /* shown as no days */ }
      state.days = body.ok ? body.days : [];
      const select = $("day");
      select.replaceChildren();
      for (const d of state.days) {
        const o = P.el("option", "", d.label);
        o.value = d.day;
        select.append(o);
      }
      if (!state.days.some(function (d) { return d.day === state.day; })) {
        state.day = state.days.length ? state.days[0].day : null;
        state.slot = null;
      }
      select.value = state.day || "";
      drawSlots();
      onChange();
      state.loaded = (state.loaded || 0) + 1;
    }

    $("day").addEventListener("change", function () { state.day = $("day").value; state.slot = null; drawSlots(); onChange(); });
    return { state: state, load: load };
  }

  return { bind: bind };
})();

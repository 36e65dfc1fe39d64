// A booking's own page: see it, cancel it, or move it to another free slot.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { appointment: null, busy: false };
  window.qmsManage = state;

  function showError(text) { $("error").textContent = text || ""; $("error").hidden = !text; }

  function draw() {
    const a = state.appointment;
    if (!a) return;
    $("m-field").textContent = a.field_name;
    $("m-when").textContent = (a.day_label || a.day) + " · " + a.slot;
    $("m-status").textContent = T["booking_status_" + a.status] || a.status;
    $("m-status").className = "status " + a.status;
    $("actions").hidden = a.status !== "booked";
  }

  async function answer(res) {
    state.busy = false;
    if (!res.body.ok) { showError((res.body.error && res.body.error.message) || T.err_network); return false; }
    showError("");
    state.appointment = res.body.appointment;
    draw();
    return true;
  }

  async function load() {
    try {
      const resp = await fetch(config.api + config.suffix);
      await answer({ status: resp.status, body: await resp.json() });
    } catch (e) { showError(T.err_network); }
  }

  async function cancel() {
    if (state.busy || !window.confirm(T.booking_cancel_confirm)) return;
    state.busy = true;
    await answer(await P.post(config.api + "/cancel" + config.suffix, { request_id: P.requestId() }));
  }

  async function move() {
    if (state.busy || !slots.state.slot) return;
    state.busy = true;
    const ok = await answer(await P.post(config.api + "/move" + config.suffix,
                                         { day: slots.state.day, slot: slots.state.slot, request_id: P.requestId() }));
    if (ok) $("move").hidden = true;
    slots.load(state.appointment.field);
  }

  const slots = window.QmsSlots.bind(config.slots, T, function () { $("move-do").disabled = !slots.state.slot; });
  $("cancel").addEventListener("click", cancel);
  $("move-open").addEventListener("click", function () {
    $("move").hidden = false;
    if (state.appointment) slots.load(state.appointment.field);
  });
  $("move-do").addEventListener("click", move);
  load();
})();

// /dat-lich: a field, a day and a free slot, a verified phone, and the booking with its code.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { busy: false, last: null, requestId: null };
  window.qmsBooking = state;
  if (!$("field")) return;

  function showError(text) { $("error").textContent = text; $("error").hidden = !text; }
  function ready() {
    $("book").disabled = state.busy || !phone.state.proof || !slots.state.slot;
    state.requestId = null;  // another choice is another booking
  }

  async function book() {
    if (state.busy) return;
    state.busy = true;
    ready();
    showError("");
    state.requestId = state.requestId || P.requestId();
    const res = await P.post(config.api, { field: slots.state.field, day: slots.state.day, slot: slots.state.slot,
                                           proof: phone.state.proof, request_id: state.requestId });
    state.busy = false;
    $("book").disabled = false;
    if (!res.body.ok) {
      window.QmsPhone.failed(res, T, phone, showError);
      slots.load(slots.state.field);  // the places may have changed meanwhile
      return;
    }
    state.last = res.body;
    const a = res.body.appointment;
    $("form").hidden = true;
    $("result").hidden = false;
    $("r-field").textContent = a.field_name;
    $("r-when").textContent = (a.day_label || a.day) + " · " + a.slot;
    $("r-code").textContent = a.code;
    $("r-qr").src = res.body.code_qr;
    $("r-manage").href = res.body.manage_url;
  }

  const slots = window.QmsSlots.bind(config.slots, T, function () { if (phone) ready(); });
  const phone = window.QmsPhone.bind(config, T, ready);
  $("field").addEventListener("change", function () { slots.load($("field").value); });
  $("book").addEventListener("click", book);
  slots.load($("field").value);
  ready();
})();

// /lay-so: a field, a verified phone, and today's number with its check-in code.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { busy: false, last: null, requestId: null };
  window.qmsRemote = state;
  if (!$("field")) return;  // no field takes remote numbers

  function showError(text) { $("error").textContent = text; $("error").hidden = !text; }

  async function take() {
    if (state.busy) return;
    state.busy = true;
    $("take").disabled = true;
    showError("");
    // one request id per field and proof: a retry after a lost answer gets the same number
    state.requestId = state.requestId || P.requestId();
    const res = await P.post(config.api, { field: $("field").value, proof: phone.state.proof,
                                           request_id: state.requestId });
    state.busy = false;
    $("take").disabled = false;
    if (!res.body.ok) {
      if (res.status !== 0) state.requestId = null;
      window.QmsPhone.failed(res, T, phone, showError);
      return;
    }
    state.requestId = null;
    state.last = res.body;
    show(res.body);
  }

  function show(r) {
    $("form").hidden = true;
    $("result").hidden = false;
    $("r-field").textContent = r.field_name;
    $("r-number").textContent = r.ticket.number;
    const lines = P.waitLines(T, r.ahead, r.est_wait_s);
    $("r-ahead").textContent = lines[0];
    $("r-wait").textContent = lines[1];
    $("r-code").textContent = r.code;
    $("r-qr").src = r.code_qr;
    $("r-track").href = r.tracking_url;
  }

  const phone = window.QmsPhone.bind(config, T, function () { $("take").hidden = false; take(); });
  $("take").hidden = !phone.state.proof;
  $("field").addEventListener("change", function () { state.requestId = null; });
  $("take").addEventListener("click", take);
})();

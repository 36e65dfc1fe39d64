// Phone verification shared by /lay-so and /dat-lich: send a one-time code, type it, get a proof
// (signed by the server, valid a while) that the ticket or booking request carries.
"use strict";
window.QmsPhone = (function () {
  const P = window.QmsPages, $ = P.$;

  function bind(config, T, onVerified) {
    const key = "qms-proof-" + config.purpose;
    const state = { proof: sessionStorage.getItem(key), phone: sessionStorage.getItem(key + "-phone") };
    let timer = null;

    function message(text, isError) {
      const box = $("otp-info");
      box.textContent = text || "";
      box.className = isError ? "error" : "muted";
    }
    function countdown(seconds) {
      const resend = $("resend");
      clearInterval(timer);
      let left = seconds;
      resend.disabled = true;
      timer = setInterval(function () {
        left -= 1;
        if (left <= 0) { clearInterval(timer); resend.disabled = false; }
      }, 1000);
    }
    function draw() {
      $("phone-step").hidden = !!state.proof;
      $("verified").hidden = !state.proof;
      if (state.proof) $("verified-phone").textContent = state.phone || "";
    }
    async function send() {
      const phone = $("phone").value;
      $("send").disabled = true;
      const res = await P.post(config.otp_send, { phone: phone, purpose: config.purpose });
      $("send").disabled = false;
      if (!res.body.ok) { message((res.body.error && res.body.error.message) || T.err_network, true); return; }
      state.phone = phone;
      $("otp-box").hidden = false;
      message(P.fmt(T.otp_sent, { phone: phone }) + " " + P.fmt(T.otp_resend_in, { s: res.body.resend_s }));
      countdown(res.body.resend_s);
      $("otp").value = "";
      $("otp").focus();
    }
    async function verify() {
      const res = await P.post(config.otp_verify, { phone: state.phone || $("phone").value,
                                                   purpose: config.purpose, code: $("otp").value });
      if (!res.body.ok) { message((res.body.error && res.body.error.message) || T.err_network, true); return; }
      state.proof = res.body.proof;
      sessionStorage.setItem(key, state.proof);
      sessionStorage.setItem(key + "-phone", state.phone || "");
      message("");
      draw();
      onVerified();
    }
    function forget() {
      state.proof = null;
      sessionStorage.removeItem(key);
      $("otp-box").hidden = true;
      draw();
    }
    $("send").addEventListener("click", send);
    $("resend").addEventListener("click", send);
    $("verify").addEventListener("click", verify);
    $("otp").addEventListener("keydown", function (e) { if (e.key === "Enter") verify(); });
    $("phone").addEventListener("keydown", function (e) { if (e.key === "Enter") send(); });
    $("change-phone").addEventListener("click", forget);
    draw();
    return { state: state, forget: forget };
  }

  // errors of a ticket or booking request: an expired proof sends the citizen back to the phone step
  function failed(res, T, phone, show) {
    const err = res.body.error || {};
    if (err.code === "not_verified") phone.forget();
    show(err.message || T.err_network);
  }

  return { bind: bind, failed: failed };
})();

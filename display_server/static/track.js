// A ticket's own page (the QR code's target): its status, the people ahead, the wait, the counter.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { view: null, connected: false, busy: false };
  window.qmsTrack = state;
  // a remote ticket's check-in code rides in the link's fragment (#ma=…): never sent to a server
  const hashCode = (/(?:^#|&)ma=([ACDEFGHJKLMNPQRTUVWXY34679]{6,8})(?:&|$)/.exec(location.hash) || [])[1] || null;
  const STATUS = { waiting: T.track_waiting, transferred: T.track_transferred, done: T.track_done,
                   no_show: T.track_no_show, expired: T.track_expired };

  function draw() {
    const v = state.view;
    $("offline").hidden = state.connected && (!v || v.online);
    if (!v) return;
    if (!v.found) { $("status").textContent = T.track_not_found; return; }
    const t = v.ticket;
    if (!t) return;
    $("field").textContent = t.field_name || "";
    $("number").textContent = t.number;
    $("priority").hidden = !t.priority;
    $("appointment").hidden = !t.appointment;
    const checkin = $("checkin");
    const awaiting = !!t.awaiting_checkin && (t.status === "waiting" || t.status === "transferred");
    checkin.hidden = !awaiting;
    checkin.textContent = awaiting ? (hashCode ? P.fmt(T.track_checkin_code, { code: hashCode }) : T.track_checkin) : "";
    const status = $("status");
    status.className = "status " + t.status;
    status.replaceChildren();
    if (t.status === "serving") {
      // "Mời ông/bà đến" and the counter's own name ("Quầy 3"): the word "quầy" once
      status.append(T.track_serving, " ", P.el("span", "counter-name", t.counter_name || t.counter));
    } else if (t.status === "done") {
      status.textContent = T.track_done + " " + (t.rating ? T.track_rated : T.track_thanks);  // one thanks
    } else {
      status.textContent = STATUS[t.status] || t.status;
    }
    const waiting = t.status === "waiting" || t.status === "transferred";
    const lines = waiting ? P.waitLines(T, v.ahead, v.est_wait_s) : ["", ""];
    $("ahead").textContent = lines[0];
    $("wait").textContent = lines[1];
    // "Ông/bà sẽ nhận tin Zalo khi còn 3 người phía trước"
    const notice = $("notify");
    notice.hidden = !v.notify;
    notice.textContent = v.notify ? P.fmt(T.track_notify, {
      channel: T["notify_channel_" + v.notify.channel] || v.notify.channel, n: v.notify.ahead }) : "";
    drawRating(v);
  }

  // served, not rated yet, within the site's window: the citizen may rate from here
  function drawRating(v) {
    const box = $("rate");
    box.hidden = !v.rate || state.busy;
    if (!v.rate || box.dataset.levels === String(v.rate.length)) return;
    box.dataset.levels = String(v.rate.length);
    const levels = $("rate-levels");
    levels.replaceChildren();
    for (let score = v.rate.length; score >= 1; score--) {
      const b = P.el("button", "rate-button", v.rate[score - 1]);
      b.type = "button";
      b.dataset.score = String(score);
      b.addEventListener("click", function () { rate(score); });
      levels.append(b);
    }
  }

  async function rate(score) {
    if (state.busy) return;
    state.busy = true;
    draw();
    const res = await P.post(config.rate_api, { score: score });
    state.busy = false;
    if (!res.body.ok) {
      $("rate-error").textContent = (res.body.error && res.body.error.message) || T.err_network;
      $("rate-error").hidden = false;
    }
    draw();
  }

  QmsLive.connect(config.ws, {
    onMessage: function (msg) { if (msg.type === "view") { state.view = msg.view; draw(); } },
    onStatus: function (up) { state.connected = up; draw(); },
  });
})();

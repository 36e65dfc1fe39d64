// A ticket's own page (the QR code's target): its status, the people ahead, the wait, the counter.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { view: null, connected: false };
  window.qmsTrack = state;
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
  }

  QmsLive.connect(config.ws, {
    onMessage: function (msg) { if (msg.type === "view") { state.view = msg.view; draw(); } },
    onStatus: function (up) { state.connected = up; draw(); },
  });
})();

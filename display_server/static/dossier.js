// A dossier's public page (/hs/{code}?k=…, the receipt's QR code): drawn by the server, then
// redrawn whenever the dossier service publishes a change of this dossier.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { view: { found: true, online: true, dossier: config.view }, connected: false, updates: 0 };
  window.qmsDossier = state;

  function draw() {
    const v = state.view;
    $("offline").hidden = state.connected && v.online;
    $("hs-missing").hidden = v.found;
    if (v.found && v.dossier) QmsDossier.draw($("hs"), v.dossier, T);
  }

  QmsLive.connect(config.ws, {
    onMessage: function (msg) {
      if (msg.type !== "view") return;
      state.view = msg.view;
      state.updates += 1;
      draw();
    },
    onStatus: function (up) { state.connected = up; draw(); },
  });
})();

// The rating tablet: when the counter has finished a ticket that nobody rated yet, big buttons for
// the site's levels (best first); a tap is one POST /api/rate/{counter} naming that ticket; then a thank-you.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const THANKS_MS = 8000;
  const state = { view: null, connected: false, busy: false, thanked: null, thanksUntil: 0 };
  window.qmsRate = state;
  let thanksTimer = null;

  // a face drawn as SVG (emoji fonts differ from tablet to tablet): the mouth from sad to happy
  function face(score, levels) {
    const NS = "http://www.w3.org/2000/svg";
    const mood = levels > 1 ? (score - 1) / (levels - 1) * 2 - 1 : 1;  // -1 … 1
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 100 100");
    svg.setAttribute("class", "face");
    const parts = [
      ["circle", { cx: 50, cy: 50, r: 46, fill: "none", stroke: "currentColor", "stroke-width": 6 }],
      ["circle", { cx: 34, cy: 40, r: 6, fill: "currentColor" }],
      ["circle", { cx: 66, cy: 40, r: 6, fill: "currentColor" }],
      ["path", { d: "M28 " + (68 - mood * 6) + " Q50 " + (68 + mood * 18) + " 72 " + (68 - mood * 6),
                 fill: "none", stroke: "currentColor", "stroke-width": 6, "stroke-linecap": "round" }],
    ];
    for (const [tag, attrs] of parts) {
      const e = document.createElementNS(NS, tag);
      for (const k in attrs) e.setAttribute(k, attrs[k]);
      svg.append(e);
    }
    return svg;
  }

  function draw() {
    const v = state.view;
    $("offline").hidden = state.connected && (!v || v.online);
    if (!v) return;
    const last = v.last;
    const thanking = Date.now() < state.thanksUntil;
    const pending = last && last.rating === null && state.thanked !== last.id;
    $("thanks").hidden = !thanking;
    $("prompt").hidden = thanking || !pending;
    $("idle").hidden = thanking || !!pending;
    if (pending && !thanking) {
      $("prompt-text").textContent = P.fmt(T.rate_prompt, { number: last.number });
      const box = $("levels");
      if (box.dataset.ticket !== last.id || box.dataset.disabled !== String(state.busy)) {
        box.replaceChildren();
        for (let score = v.levels.length; score >= 1; score--) {
          const b = P.el("button", "rate-button" + (score === v.levels.length ? " best" : score === 1 ? " worst" : ""));
          b.type = "button";
          b.dataset.score = String(score);
          b.append(face(score, v.levels.length), P.el("span", null, v.levels[score - 1]));
          b.disabled = state.busy || !state.connected;
          b.addEventListener("click", function () { rate(score, last.id); });
          box.append(b);
        }
        box.dataset.ticket = last.id;
        box.dataset.disabled = String(state.busy);
      }
    }
    const c = v.counter;
    $("idle-sub").textContent = c.status === "closed" ? T.counter_closed
      : v.serving ? P.fmt(T.rate_serving, { number: v.serving }) : "";
  }

  function thank(id) {
    state.thanked = id;
    state.thanksUntil = Date.now() + THANKS_MS;
    clearTimeout(thanksTimer);
    thanksTimer = setTimeout(draw, THANKS_MS + 50);
  }

  async function rate(score, id) {
    if (state.busy) return;
    state.busy = true;
    draw();
    const res = await P.post(config.api, { score: score, ticket: id });  // this very ticket, nobody else's
    state.busy = false;
    if (res.body.ok || (res.body.error && res.body.error.code === "invalid_state")) {
      thank(id);  // rated now, or already (from the keypad): thanks either way
    } else {
      const e = $("error");
      e.textContent = (res.body.error && res.body.error.message) || T.err_network;
      e.hidden = false;
      setTimeout(function () { e.hidden = true; }, 6000);
    }
    draw();
  }

  QmsLive.connect(config.ws, {
    onMessage: function (msg) {
      if (msg.type !== "view") return;
      const before = state.view && state.view.last;
      state.view = msg.view;
      const now = msg.view.last;
      // rated on the counter's keypad while the question was on screen: thank all the same
      if (before && now && before.id === now.id && before.rating === null && now.rating !== null && state.thanked !== now.id) {
        thank(now.id);
      }
      draw();
    },
    onStatus: function (up) { state.connected = up; draw(); },
  });
})();

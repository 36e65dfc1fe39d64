// The officer console: the counter's state and queues pushed live; every button or shortcut is
// one POST /api/counter/{id} (one cmd/counter action of the core), with the session's CSRF token.
// The dossier form (Tiếp nhận hồ sơ) has its own script, console_dossier.js.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  // last: what this console did with the ticket it no longer holds ("Đã bỏ qua số 1003")
  const state = { view: null, connected: false, busy: false, replies: [], last: null, ticketId: undefined };
  window.qmsConsole = state;
  const LAST = { skip: "console_last_no_show", finish: "console_last_done", transfer: "console_last_transferred" };
  const STATUS = { closed: T.counter_closed, open: T.counter_open, paused: T.counter_paused, serving: T.counter_serving };

  function say(text, isError) {
    const m = $("message");
    m.textContent = text || "";
    m.className = "message" + (isError ? " error" : "");
  }

  function button(id) { return $("a-" + id); }

  function draw() {
    const v = state.view;
    $("offline").hidden = state.connected && (!v || v.online);
    if (!v) return;
    const c = v.counter;
    const status = $("status");
    status.textContent = STATUS[c.status] || c.status;
    status.className = "pill " + c.status;
    const t = c.ticket;
    const tid = t ? t.id : null;
    if (tid !== state.ticketId) {
      state.ticketId = tid;
      // another citizen at the counter: the dossier form starts afresh (console_dossier.js)
      document.dispatchEvent(new CustomEvent("qms-ticket", { detail: tid }));
    }
    $("number").textContent = t ? t.number : "—";
    $("number").classList.toggle("empty", !t);
    $("ticket-info").textContent = t ? (t.calls + " " + T.console_calls + (t.priority ? " · " + T.priority_badge : "")
                                        + (t.via === "appointment" ? " · " + T.appointment_badge : "")
                                        + (t.via === "remote" ? " · " + T.remote_badge : ""))
      : state.last || T.console_none;
    $("officer").textContent = c.officer || "—";
    const usable = state.connected && v.online && !state.busy;
    const closed = c.status === "closed", paused = c.status === "paused", serving = !!t;
    const enable = {
      call_next: true, recall: serving && !paused, skip: serving, finish: serving, pause: !closed && !paused,
      resume: paused, open: true, close: !closed, transfer: serving, call: true, dossier: true,
    };
    for (const name in enable) {
      const b = button(name);
      if (b) b.disabled = !usable || !enable[name];
    }
    button("pause").hidden = paused;
    button("resume").hidden = !paused;

    const q = $("queues");
    q.replaceChildren();
    for (const f of v.queues) {
      const tr = P.el("tr");
      tr.dataset.field = f.field;
      tr.append(P.el("td", null, f.name));
      const w = P.el("td", "num w", f.waiting === null || f.waiting === undefined ? "—" : String(f.waiting));
      tr.append(w);
      tr.append(P.el("td", "next-numbers", (f.next || []).join(" · ")));
      q.append(tr);
    }
    chips($("no-shows"), v.no_shows);
    chips($("here"), v.transferred_here);

    const sel = $("transfer-to");
    if (!sel.dataset.filled && v.transfer_fields.length) {
      for (const f of v.transfer_fields) $("transfer-fields").append(option("field:" + f.id, f.name));
      for (const k of v.transfer_counters) $("transfer-counters").append(option("counter:" + k.id, k.name));
      sel.dataset.filled = "1";
    }
  }

  function option(value, text) { const o = P.el("option", null, text); o.value = value; return o; }

  function chips(box, list) {
    box.replaceChildren();
    if (!list.length) { box.append(P.el("span", "muted", T.console_no_shows_none)); return; }
    for (const n of list) {
      const b = P.el("button", null, n.number);
      b.type = "button";
      b.dataset.ticket = n.id;
      b.disabled = !state.connected || state.busy;
      b.addEventListener("click", function () { act("call", { ticket: n.id }); });
      box.append(b);
    }
  }

  async function act(action, extra) {
    if (state.busy) return;  // one command at a time: a double press must not call two citizens
    state.busy = true;
    draw();
    const res = await P.post(config.api, Object.assign({ action: action, request_id: P.requestId() }, extra || {}),
                             config.csrf);
    state.busy = false;
    state.replies.push({ action: action, status: res.status, body: res.body });
    if (res.status === 401) { say(T.console_login_again, true); P.toLogin(); return; }
    if (!res.body.ok) {
      say((res.body.error && res.body.error.message) || T.err_network, true);
    } else if (action === "call") {
      $("call-number").value = "";
      $("call-number").blur();
      say("");
    } else if (LAST[action] && res.body.ticket) {
      state.last = P.fmt(T[LAST[action]], { number: res.body.ticket.number });
      say(state.last + ".");
    } else {
      say("");
    }
    draw();
  }

  function transfer() {
    const v = $("transfer-to").value || "";
    const i = v.indexOf(":");
    if (i < 0) return;
    act("transfer", v.slice(0, i) === "field" ? { to_field: v.slice(i + 1) } : { to_counter: v.slice(i + 1) });
  }
  function callNumber() {
    const n = $("call-number").value.trim();
    if (n) act("call", { ticket: n }); else $("call-number").focus();
  }

  for (const b of document.querySelectorAll(".actions button[data-action]")) {
    b.addEventListener("click", function () { act(b.dataset.action); });
  }
  button("transfer").addEventListener("click", transfer);
  button("call").addEventListener("click", callNumber);
  $("call-number").addEventListener("keydown", function (e) { if (e.key === "Enter") callNumber(); });

  // shortcuts: one letter, never while typing in a box
  const KEYS = { n: "call_next", r: "recall", s: "skip", f: "finish", o: "open" };
  document.addEventListener("keydown", function (e) {
    const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName);
    if (e.key === "Escape") { if (typing) e.target.blur(); return; }
    if (typing || e.ctrlKey || e.altKey || e.metaKey) return;
    const key = e.key.toLowerCase();
    let b = null;
    if (KEYS[key]) b = button(KEYS[key]);
    else if (key === "p") b = button(state.view && state.view.counter.status === "paused" ? "resume" : "pause");
    else if (key === "t") { e.preventDefault(); $("transfer-to").focus(); return; }
    else if (key === "g") { e.preventDefault(); $("call-number").focus(); return; }
    else if (key === "d") { e.preventDefault(); $("dossier").focus(); return; }
    if (b && !b.disabled) { e.preventDefault(); b.click(); }
  });

  QmsLive.connect(config.ws, {
    onMessage: function (msg) { if (msg.type === "view") { state.view = msg.view; draw(); } },
    onStatus: function (up) {
      state.connected = up;
      draw();
      if (!up) P.checkSession(function () { say(T.console_login_again, true); });
    },
  });
})();

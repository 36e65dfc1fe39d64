// The kiosk: a big button per field; a tap issues a ticket (POST /api/tickets), shows it, and prints
// it (on the office's printer through the server, or with the browser's print). With the 4-in-1
// menu (config.menu), the home screen offers this and the other functions (kiosk_more.js), which
// reach this flow through window.qmsKioskApi.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  // what tests and the curious can look at: window.qmsKiosk
  // phone: the digits being typed on the optional phone screen (never kept past the tap that used them)
  const state = { view: null, connected: false, busy: false, last: null, printed: 0, priority: false, attempts: 0,
                  choosing: null, phone: "" };
  window.qmsKiosk = state;
  let backTimer = null;

  // every screen of the page; one shows at a time
  const SCREENS = ["menu", "choose", "phone", "checkin", "issued", "procs", "proc", "rate"];
  function showScreen(id) {
    for (const s of SCREENS) {
      const e = $(s);
      if (e) e.hidden = s !== id;
    }
    document.dispatchEvent(new CustomEvent("kiosk-screen", { detail: id }));
  }
  // where the next citizen starts: the menu, or the field buttons on a kiosk that only issues
  function home() {
    clearTimeout(backTimer);
    showScreen($("menu") ? "menu" : "choose");
  }

  function draw() {
    const view = state.view;
    if (!view) return;
    const box = $("fields");
    box.replaceChildren();
    const usable = state.connected && view.online && !state.busy;
    for (const f of view.fields) {
      const b = P.el("button", "field-button");
      b.type = "button";
      b.dataset.field = f.id;
      b.append(P.el("span", "fb-name", f.name));
      if (f.waiting !== null && f.waiting !== undefined) {
        b.append(P.el("span", "fb-waiting", T.waiting + ": " + f.waiting + " " + P.plural(T, "people", f.waiting)));
      }
      b.disabled = !usable;
      b.addEventListener("click", function () { choose(f); });
      box.append(b);
    }
    $("unavailable").hidden = state.connected && view.online;
    if (config.phone) {
      $("phone-skip").disabled = !usable;
      $("phone-take").disabled = !usable;
    }
  }

  function showError(message) {
    const e = $("error");
    e.textContent = message || T.err_network;
    e.hidden = false;
    clearTimeout(showError.timer);
    showError.timer = setTimeout(function () { e.hidden = true; }, 8000);
  }

  function setPriority(on) {
    state.priority = on;
    $("priority").setAttribute("aria-pressed", on ? "true" : "false");
  }

  function delay(ms) { return new Promise(function (resolve) { setTimeout(resolve, Math.max(0, ms)); }); }

  // The answer was lost on the way (the server or the core did not answer): the ticket may or may
  // not have been issued, and asking again with the same request id tells which.
  function uncertain(res) {
    const code = res.body.error && res.body.error.code;
    return res.status === 0 || code === "unavailable" || code === "http";
  }

  // One tap ends with the ticket that was issued or a clear "not issued", never with a ticket
  // issued after the kiosk gave up: every attempt carries a deadline the core checks.
  async function ask(body, url) {
    const until = Date.now() + config.retry_s * 1000;
    let pause = 500;
    for (;;) {
      const started = Date.now();
      state.attempts += 1;
      const res = await P.post(url || config.api, body);
      if (!uncertain(res)) return res;
      if (Date.now() + pause > until) {
        // what this attempt sent may still be on its way: its deadline passes within command_s
        await delay(started + config.command_s * 1000 - Date.now());
        return { status: 0, body: { ok: false, error: { code: "expired", message: null } } };
      }
      showError(T.kiosk_waiting);
      await delay(pause);
      pause = Math.min(pause * 2, 4000);
    }
  }

  // ------------------------------------------------------------ the optional phone number
  // Only where the office sends messages ([notify]): after the field, a keypad; "Bỏ qua" takes
  // the number without a phone in one tap.

  function choose(f) {
    if (state.busy) return;
    if (!config.phone) { take(f.id, ""); return; }
    state.choosing = f.id;
    state.phone = "";
    $("phone-field").textContent = f.name;
    drawPhone();
    showScreen("phone");
    idlePhone();
  }

  // "0912 345 678": easier to check against one's own phone
  function grouped(digits) {
    return [digits.slice(0, 4), digits.slice(4, 7), digits.slice(7)].filter(Boolean).join(" ");
  }

  function drawPhone(message) {
    $("phone-number").textContent = grouped(state.phone);
    const e = $("phone-error");
    e.textContent = message || "";
    e.hidden = !message;
  }

  function closePhone() {
    clearTimeout(phoneTimer);
    state.choosing = null;
    state.phone = "";
    if (!config.phone) return;
    drawPhone();
    $("phone").hidden = true;
  }

  // the next citizen never finds the last one's digits: untouched for idle_s, the kiosk starts over
  let phoneTimer = null;
  function idlePhone() {
    clearTimeout(phoneTimer);
    phoneTimer = setTimeout(function () {
      if (state.busy) { idlePhone(); return; }
      if (state.choosing === null) return;
      closePhone();
      setPriority(false);
      home();
    }, config.idle_s * 1000);
  }

  if (config.phone) {
    for (const key of document.querySelectorAll("#keypad [data-digit]")) {
      key.addEventListener("click", function () {
        if (state.phone.length < config.phone.max_digits) state.phone += key.dataset.digit;
        drawPhone();
        idlePhone();
      });
    }
    $("phone-delete").addEventListener("click", function () {
      state.phone = state.phone.slice(0, -1);
      drawPhone();
      idlePhone();
    });
    $("phone-skip").addEventListener("click", function () {
      if (state.choosing !== null) take(state.choosing, "");
    });
    $("phone-take").addEventListener("click", function () {
      if (state.choosing !== null) take(state.choosing, state.phone);
    });
    $("phone-back").addEventListener("click", function () {
      if (state.busy) return;
      closePhone();
      showScreen("choose");
    });
  }

  async function take(field, phone) {
    if (state.busy) return;  // one ticket per tap, whatever the finger does
    state.busy = true;
    draw();
    const body = { field: field, priority: state.priority, kiosk: config.kiosk, request_id: P.requestId() };
    if (phone) body.phone = phone;
    const res = await ask(body);
    state.busy = false;
    if (!res.body.ok) {
      draw();
      const error = res.body.error || {};
      if (error.code === "bad_phone" && state.choosing !== null) {
        drawPhone(error.message);  // no ticket: the citizen corrects the number, or skips
        idlePhone();
        return;
      }
      showError(error.code === "expired" ? T.kiosk_not_issued : error.message);
      return;
    }
    $("error").hidden = true;
    closePhone();
    state.last = res.body;
    setPriority(false);
    show(res.body);
    draw();
  }

  function show(r) {
    const t = r.ticket;
    $("t-field").textContent = r.field_name || t.field;
    $("t-number").textContent = t.number;
    $("t-priority").hidden = !t.priority;
    $("t-appointment").hidden = !t.appointment;
    const note = r.late ? T.checkin_late : (t.via === "remote" && r.checkin ? T.checkin_done_remote : "");
    $("t-note").textContent = note;
    $("t-note").hidden = !note;
    $("t-time").textContent = r.issued_text;  // in the site's time zone, whatever the browser's
    const lines = P.waitLines(T, r.ahead, r.est_wait_s);
    $("t-ahead").textContent = lines[0];
    $("t-wait").textContent = lines[1];
    const status = $("print-status");
    status.className = "print-status";
    if (r.print.mode === "printer") {
      status.textContent = r.print.ok ? (r.print.message || T.kiosk_take_it) : r.print.message;
      if (!r.print.ok) status.classList.add("error");
      else if (r.print.message) status.classList.add("warn");
    } else {
      status.textContent = "";
    }
    showScreen("issued");
    const qr = $("t-qr");
    qr.onload = qr.onerror = function () {  // print once the QR code is there (or could not be)
      qr.onload = qr.onerror = null;
      if (r.print.mode === "browser") { state.printed += 1; window.print(); }
    };
    qr.src = r.qr_url;  // the ticket's own page, with its token
    clearTimeout(backTimer);
    backTimer = setTimeout(back, config.show_s * 1000);
  }

  function back() {
    clearTimeout(backTimer);
    if (config.home) { location.replace(config.home); return; }  // the next citizen finds Vietnamese
    home();
  }

  // in another language, a kiosk nobody touches goes back to Vietnamese
  if (config.home) {
    let idleTimer = null;
    const idle = function () {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(function () { if (!state.busy) location.replace(config.home); else idle(); },
                             config.idle_s * 1000);
    };
    for (const type of ["pointerdown", "keydown", "touchstart"]) {
      document.addEventListener(type, idle, { passive: true, capture: true });
    }
    idle();
  }

  // ------------------------------------------------------------ check-in of a booking or a remote number
  // The code is typed on the screen's keys, or by a QR scanner acting as a keyboard (the code, then Enter).
  function openCheckin() {
    showScreen("checkin");
    $("checkin-code").value = "";
    $("checkin-code").focus();
    clearTimeout(backTimer);
    backTimer = setTimeout(back, config.idle_s * 1000);
  }

  async function checkin() {
    const code = $("checkin-code").value.replace(/\s+/g, "").toUpperCase();
    if (state.busy || !code) return;
    state.busy = true;
    const res = await ask({ code: code, kiosk: config.kiosk, request_id: P.requestId() }, config.checkin);
    state.busy = false;
    if (!res.body.ok) {
      const error = res.body.error || {};
      showError(error.code === "expired" ? T.kiosk_not_issued : error.message);
      $("checkin-code").focus();
      return;
    }
    $("error").hidden = true;
    res.body.checkin = true;
    state.last = res.body;
    show(res.body);
  }

  if (config.checkin) {
    $("checkin-open").hidden = false;
    $("checkin-open").addEventListener("click", openCheckin);
    const keys = $("code-keys");
    for (const ch of config.alphabet) {
      const b = P.el("button", "", ch);
      b.type = "button";
      b.dataset.key = ch;
      b.addEventListener("click", function () { $("checkin-code").value += ch; });
      keys.append(b);
    }
    $("checkin-clear").addEventListener("click", function () { $("checkin-code").value = ""; $("checkin-code").focus(); });
    $("checkin-back").addEventListener("click", back);
    $("checkin-send").addEventListener("click", checkin);
    $("checkin-code").addEventListener("keydown", function (e) { if (e.key === "Enter") { e.preventDefault(); checkin(); } });
  }

  $("done").addEventListener("click", back);
  for (const b of document.querySelectorAll("[data-home]")) b.addEventListener("click", back);
  if ($("menu-ticket")) {
    $("menu-ticket").addEventListener("click", function () { showScreen("choose"); });
  }
  // With the menu, a screen left untouched for idle_s goes back to it (the new ticket keeps its own
  // show_s; a tap in progress is never cut short).
  if ($("menu")) {
    let idleTimer = null;
    const idleHome = function () {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(function () {
        const current = SCREENS.find(function (s) { return $(s) && !$(s).hidden; });
        if (state.busy) idleHome();
        else if (current !== "menu" && current !== "issued") back();
      }, config.idle_s * 1000);
    };
    for (const type of ["pointerdown", "keydown", "touchstart", "input"]) {
      document.addEventListener(type, idleHome, { passive: true, capture: true });
    }
  }
  // for kiosk_more.js: the procedure view takes a number as a field button does
  window.qmsKioskApi = { choose: choose, back: back, showScreen: showScreen, showError: showError,
                         busy: function () { return state.busy; } };
  if (config.priority) {
    $("priority").hidden = false;
    $("priority").addEventListener("click", function () { setPriority(!state.priority); });
  }
  const time = P.clock(config.timezone);
  function tick() { $("clock").textContent = time(); }
  tick();
  setInterval(tick, 10000);

  QmsLive.connect(config.ws, {
    onMessage: function (msg) {
      if (msg.type === "view") { state.view = msg.view; draw(); }
    },
    onStatus: function (up) {
      state.connected = up;
      $("offline").hidden = up;
      draw();
    },
  });
})();

// The kiosk's other functions on the 4-in-1 menu: "Tra cứu thủ tục" (search with the on-screen
// keys, browse by field, a procedure's documents, fees and time with a QR code for the phone, and
// "Lấy số cho thủ tục này" through the take-a-number flow of kiosk.js) and "Đánh giá" (today's
// ticket number, then a level; the core checks the ticket and its rating window).
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const K = window.qmsKioskApi;
  // what tests and the curious can look at
  const more = { results: [], procedure: null, fields: [], field: null, rated: null, asked: 0 };
  window.qmsKioskMore = more;

  // ------------------------------------------------------------ procedures
  async function fetchJson(url) {
    try {
      const resp = await fetch(url, { credentials: "same-origin" });
      return await resp.json();
    } catch (e) {
      return { ok: false, error: { code: "network", message: null } };
    }
  }

  function drawFields() {
    const box = $("proc-fields");
    box.replaceChildren();
    for (const f of more.fields) {
      const b = P.el("button", "chip", f.name);
      b.type = "button";
      b.dataset.field = f.id;
      b.setAttribute("aria-pressed", more.field === f.id ? "true" : "false");
      b.addEventListener("click", function () {
        more.field = more.field === f.id ? null : f.id;
        drawFields();
        search();
      });
      box.append(b);
    }
  }

  function drawResults(list, browsing) {
    const box = $("proc-results");
    box.replaceChildren();
    for (const p of list) {
      const b = P.el("button", "proc-item");
      b.type = "button";
      b.dataset.code = p.code;
      b.append(P.el("span", "proc-name", p.name));
      b.append(P.el("span", "proc-meta", p.field_name + (p.processing_text ? " · " + p.processing_text : "")));
      b.addEventListener("click", function () { open(p); });
      const li = P.el("li");
      li.append(b);
      box.append(li);
    }
    let count = "";
    if (!more.fields.length) count = T.proc_empty;
    else if (list.length) count = P.fmt(P.plural(T, "proc_results", list.length), { n: list.length });
    else if (!browsing) count = T.proc_none;
    else count = T.kiosk_proc_hint;
    $("proc-count").textContent = count;
  }

  async function search() {
    const q = $("proc-q").value.trim();
    const mine = ++more.asked;
    const params = new URLSearchParams({ q: q, limit: "30" });
    if (more.field) params.set("field", more.field);
    if (config.home) params.set("lang", config.lang);
    const body = await fetchJson(config.procedures.api + "?" + params.toString());
    if (mine !== more.asked) return;  // a later key's answer wins
    if (!body.ok) { K.showError(body.error && body.error.message); return; }
    more.fields = body.fields;
    more.results = body.procedures;
    if (!$("proc-fields").children.length) drawFields();
    drawResults(body.procedures, !q && !more.field);
  }

  let searchTimer = null;
  function searchSoon() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 120);
  }

  function openSearch() {
    $("proc-q").value = "";
    more.field = null;
    $("proc-fields").replaceChildren();
    $("proc-results").replaceChildren();
    K.showScreen("procs");
    search();
  }

  function open(p) {
    more.procedure = p;
    $("proc-name").textContent = p.name;
    $("proc-field").textContent = [p.code, p.field_name, p.level].filter(Boolean).join(" · ");
    $("proc-time").textContent = p.processing_text || "—";
    $("proc-fees").textContent = p.fees || "—";
    $("proc-submit").textContent = p.submit_at || "—";
    const docs = $("proc-documents");
    docs.replaceChildren();
    for (const d of p.documents) docs.append(P.el("li", "", d));
    $("proc-qr").src = p.url + "/qr.svg";
    const takes = p.kiosk && config.menu.includes("ticket");  // a kiosk without "Lấy số" issues nothing
    $("proc-take").hidden = !takes;
    $("proc-note").hidden = takes;
    $("proc-note").textContent = takes ? "" : T.proc_take_elsewhere;
    K.showScreen("proc");
  }

  if (config.menu.includes("procedures")) {
    $("menu-procedures").addEventListener("click", openSearch);
    P.keys($("proc-keys"), $("proc-q"), 100, searchSoon);
    $("proc-q").addEventListener("input", searchSoon);  // a keyboard, where the kiosk has one
    $("proc-back").addEventListener("click", function () { K.showScreen("procs"); });
    $("proc-take").addEventListener("click", function () {
      const p = more.procedure;
      if (p && p.kiosk && config.menu.includes("ticket") && !K.busy()) K.choose({ id: p.field, name: p.field_name });
    });
  }

  // ------------------------------------------------------------ rating
  const MAX_NUMBER = 12;
  let rateTimer = null;

  function drawNumber() { $("rate-number").textContent = more.number || ""; }

  function rateMessage(text, ok) {
    const m = $("rate-msg");
    m.textContent = text || "";
    m.hidden = !text;
    m.classList.toggle("ok", !!ok);
  }

  function openRate() {
    clearTimeout(rateTimer);
    more.number = "";
    more.rated = null;
    drawNumber();
    rateMessage("");
    setLevelsDisabled(false);
    K.showScreen("rate");
  }

  function setLevelsDisabled(on) {
    for (const b of document.querySelectorAll("#rate-levels button")) b.disabled = on;
  }

  async function rate(score) {
    if (!more.number) { rateMessage(T.kiosk_rate_no_number); return; }
    setLevelsDisabled(true);
    const res = await P.post(config.rating.api, { kiosk: config.kiosk, ticket: more.number, score: score });
    if (!res.body.ok) {
      setLevelsDisabled(false);
      const error = res.body.error || {};
      rateMessage(error.code === "network" ? T.err_network : error.message);
      return;
    }
    more.rated = res.body.ticket;
    more.number = "";
    drawNumber();
    rateMessage(T.rate_thanks, true);
    rateTimer = setTimeout(K.back, 5000);  // thanked: the next citizen finds the menu
  }

  if (config.menu.includes("rating")) {
    $("menu-rate").addEventListener("click", openRate);
    for (const key of document.querySelectorAll("#rate-keys [data-key]")) {
      key.addEventListener("click", function () {
        if ((more.number || "").length < MAX_NUMBER) more.number = (more.number || "") + key.dataset.key;
        rateMessage("");
        drawNumber();
      });
    }
    $("rate-delete").addEventListener("click", function () { more.number = (more.number || "").slice(0, -1); drawNumber(); });
    // best first, as the counter's tablet shows them
    const levels = config.rating.levels;
    const box = $("rate-levels");
    for (let i = levels.length; i >= 1; i--) {
      const b = P.el("button", "rate-button" + (i === levels.length ? " best" : i === 1 ? " worst" : ""), levels[i - 1]);
      b.type = "button";
      b.dataset.score = String(i);
      b.addEventListener("click", function () { rate(i); });
      box.append(b);
    }
  }
  document.addEventListener("kiosk-screen", function (e) {
    if (e.detail !== "rate") clearTimeout(rateTimer);
  });
})();

// The console's "Tiếp nhận hồ sơ": pick the procedure from the catalogue (or write its name),
// the promised date comes from its processing days (the server counts business days), tick the
// documents received, the phone only with the citizen's consent. Saving ties the code to the
// ticket being served and records the dossier (POST /api/counter/{id}/dossier); the receipt
// prints on the counter's printer, or the browser prints the A5 page.
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const H = config.hs, T = H.texts;
  const state = { procedure: null, dueEdited: false, busy: false, saved: null, replies: [] };
  window.qmsConsoleDossier = state;
  let searchTimer = null;

  function url(path, query) {
    const q = new URLSearchParams(H.lang ? H.lang.slice(1) : "");
    for (const k in query || {}) q.set(k, query[k]);
    const s = q.toString();
    return H.api + path + (s ? "?" + s : "");
  }

  function say(text, isError) {
    const m = $("hs-message");
    m.textContent = text || "";
    m.className = "message" + (isError ? " error" : "");
  }

  // now, in the site's zone, as a datetime-local value
  function nowLocal() {
    const parts = new Intl.DateTimeFormat("sv-SE", { timeZone: config.timezone, year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false }).format(new Date());
    return parts.replace(" ", "T").slice(0, 16);
  }

  function receivedDay() { return ($("hs-received").value || nowLocal()).slice(0, 10); }

  async function search(text, code) {
    try {
      const resp = await fetch(url("/procedures", { q: text, received: receivedDay() }), { credentials: "same-origin" });
      const body = await resp.json();
      if (resp.status === 401) { P.toLogin(); return []; }
      const list = body.ok ? body.procedures : [];
      return code ? list.filter(function (p) { return p.code === code; }) : list;
    } catch (e) { return []; }
  }

  async function suggest() {
    const text = $("hs-procedure").value.trim();
    const box = $("hs-procedures");
    if (state.procedure && text === state.procedure.name) { box.hidden = true; return; }
    state.procedure = null;
    drawDocuments([]);
    $("hs-days").textContent = "";
    if (text.length < 2) { box.hidden = true; return; }
    const list = await search(text);
    box.replaceChildren();
    for (const p of list) {
      const li = P.el("li");
      const b = P.el("button", "hs-result", p.name);
      b.type = "button";
      b.dataset.code = p.code;
      b.append(P.el("small", "muted", " " + p.code + (p.field_name ? " · " + p.field_name : "")));
      b.addEventListener("click", function () { pick(p); });
      li.append(b);
      box.append(li);
    }
    box.hidden = !list.length;
  }

  function pick(p) {
    state.procedure = p;
    $("hs-procedure").value = p.name;
    $("hs-procedures").hidden = true;
    drawDocuments(p.documents || []);
    dueFrom(p);
  }

  function dueFrom(p) {
    $("hs-days").textContent = p.processing_days !== null && p.processing_days !== undefined
      ? P.fmt(T.console_hs_days, { n: p.processing_days }) : "";
    if (p.due_at && !state.dueEdited) $("hs-due").value = p.due_at;
  }

  function drawDocuments(docs) {
    const box = $("hs-docs");
    box.replaceChildren();
    docs.forEach(function (d, i) {
      const label = P.el("label", "hs-doc");
      const box2 = document.createElement("input");
      box2.type = "checkbox";
      box2.checked = true;
      box2.value = d;
      box2.id = "hs-doc-" + i;
      label.append(box2, " ", d);
      box.append(label);
    });
  }

  function documents() {
    const out = [];
    for (const c of document.querySelectorAll("#hs-docs input[type=checkbox]")) if (c.checked) out.push(c.value);
    for (const line of $("hs-docs-more").value.split("\n")) if (line.trim()) out.push(line.trim());
    return out;
  }

  async function save() {
    if (state.busy) return;
    const code = $("dossier").value.trim();
    if (!code) { $("dossier").focus(); return; }
    state.busy = true;
    const procedure = state.procedure ? { code: state.procedure.code, name: state.procedure.name }
      : { name: $("hs-procedure").value.trim() };
    const body = { request_id: state.requestId || (state.requestId = P.requestId()), code: code, procedure: procedure,
                   received_at: $("hs-received").value || null, due_at: $("hs-due").value || null,
                   documents: documents(), consent: $("hs-consent").checked };
    const phone = $("hs-phone").value.trim();
    if (phone) body.phone = phone;
    const res = await P.post(url("/dossier"), body, config.csrf);
    state.busy = false;
    state.replies.push({ status: res.status, body: res.body });
    // an answer lost on the way (or a service away) is asked again with the same request id;
    // anything else was answered, and the next press is a new request
    if (res.status !== 0 && res.status !== 503) state.requestId = null;
    if (res.status === 401) { say(T.console_login_again, true); P.toLogin(); return; }
    if (!res.body.ok) { say((res.body.error && res.body.error.message) || T.err_network, true); return; }
    state.saved = res.body;
    $("hsu-code").value = code;
    // the phone never waits in the form for the next citizen
    $("hs-phone").value = "";
    $("hs-consent").checked = false;
    say(res.body.message);
  }

  async function printReceipt() {
    const code = ($("dossier").value || $("hsu-code").value).trim();
    if (!code) { $("dossier").focus(); return; }
    const res = await P.post(url("/receipt"), { code: code }, config.csrf);
    state.replies.push({ status: res.status, body: res.body });
    if (!res.body.ok) { say((res.body.error && res.body.error.message) || T.err_network, true); return; }
    if (res.body.mode === "browser") { window.open(res.body.url, "_blank"); return; }
    say(res.body.message, !res.body.print.ok);
  }

  function clearForm() {
    for (const id of ["dossier", "hs-procedure", "hs-docs-more", "hs-phone", "hs-due"]) $(id).value = "";
    $("hs-consent").checked = false;
    state.procedure = null;
    state.dueEdited = false;
    drawDocuments([]);
    $("hs-days").textContent = "";
    $("hs-received").value = nowLocal();
  }

  const NOTE = { processing: "console_hs_department", needs_documents: "console_hs_needs", refused: "console_hs_reason" };
  function noteLabel() {
    const key = NOTE[$("hsu-status").value];
    $("hsu-note").hidden = !key;
    if (key) { $("hsu-note").placeholder = T[key]; $("hsu-note").setAttribute("aria-label", T[key]); }
  }

  async function update() {
    const code = $("hsu-code").value.trim();
    if (!code) { $("hsu-code").focus(); return; }
    const status = $("hsu-status").value;
    const body = { request_id: P.requestId(), code: code, status: status };
    const text = $("hsu-note").value.trim();
    if (status === "processing") body.department = text; else if (NOTE[status]) body.note = text;
    const res = await P.post(url("/dossier-event"), body, config.csrf);
    state.replies.push({ status: res.status, body: res.body });
    if (!res.body.ok) { say((res.body.error && res.body.error.message) || T.err_network, true); return; }
    $("hsu-note").value = "";
    say(res.body.message);
  }

  $("hs-received").value = nowLocal();
  $("hs-procedure").addEventListener("input", function () {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(suggest, 200);
  });
  $("hs-received").addEventListener("change", async function () {
    if (!state.procedure) return;
    const again = await search(state.procedure.name, state.procedure.code);
    if (again.length) { state.procedure = again[0]; dueFrom(again[0]); }
  });
  $("hs-due").addEventListener("input", function () { state.dueEdited = true; });
  $("a-dossier").addEventListener("click", save);
  $("hs-print").addEventListener("click", printReceipt);
  $("hsu-status").addEventListener("change", noteLabel);
  $("hsu-save").addEventListener("click", update);
  $("dossier").addEventListener("input", function () { state.requestId = null; });
  $("dossier").addEventListener("keydown", function (e) { if (e.key === "Enter") $("hs-procedure").focus(); });
  noteLabel();
  document.addEventListener("qms-ticket", function (e) {
    if (state.ticket !== undefined && e.detail && e.detail !== state.ticket) { clearForm(); say(""); }
    state.ticket = e.detail;
  });
})();

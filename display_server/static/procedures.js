// /thu-tuc: results while the citizen types (the form still works without this script).
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const input = $("q");
  if (!input) return;  // an empty catalogue: nothing to search
  const form = $("search-form");
  const fieldInput = form.querySelector("input[name='field']");
  let timer = null, asked = 0;

  function suffix() { return config.lang !== "vi" ? "?lang=" + config.lang : ""; }

  function draw(list) {
    const box = $("results");
    box.replaceChildren();
    for (const p of list) {
      const a = P.el("a");
      a.href = p.url + suffix();
      a.append(P.el("span", "proc-name", p.name));
      a.append(P.el("span", "proc-meta", p.field_name + (p.processing_text ? " · " + p.processing_text : "")));
      const li = P.el("li");
      li.append(a);
      box.append(li);
    }
    $("count").textContent = list.length ? P.fmt(P.plural(T, "proc_results", list.length), { n: list.length })
                                         : T.proc_none;
  }

  async function search() {
    const q = input.value.trim();
    const field = fieldInput ? fieldInput.value : "";
    if (!q && !field) {
      $("results").replaceChildren();
      $("count").textContent = "";
      $("fields").hidden = false;
      return;
    }
    const mine = ++asked;
    const params = new URLSearchParams({ q: q });
    if (field) params.set("field", field);
    if (config.lang !== "vi") params.set("lang", config.lang);
    try {
      const resp = await fetch(config.api + "?" + params.toString(), { credentials: "same-origin" });
      const body = await resp.json();
      if (mine !== asked || !body.ok) return;  // a later keystroke's answer wins
      $("fields").hidden = true;
      draw(body.procedures);
      history.replaceState(null, "", "/thu-tuc?" + params.toString());
    } catch (e) { /* offline: the form's submit still works */ }
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(search, 150);
  });
})();

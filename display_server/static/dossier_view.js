// A dossier's status block, as templates/_dossier.html renders it: the public page redraws it
// live, the kiosk draws it after a scan. Every text comes ready from the server (view.py).
"use strict";
window.QmsDossier = (function () {
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // the facts, the status and the lateness: the page, the kiosk after a scan and after a code
  function top(d, T) {
    const facts = el("dl", "hs-facts");
    const rows = [["hs_code", "hs-code", d.code], ["hs_procedure", "hs-procedure", d.procedure],
                  ["hs_received", "hs-received", d.received], ["hs_due", "hs-due", d.due]];
    for (const r of rows) {
      facts.append(el("dt", null, T[r[0]]));
      const dd = el("dd", null, r[2]);
      dd.id = r[1];
      facts.append(dd);
    }
    const status = el("div", "hs-status " + d.status, d.status_text);
    status.id = "hs-status";
    status.setAttribute("role", "status");
    const late = el("p", "hs-lateness " + (d.lateness ? d.lateness.kind : ""), d.lateness ? d.lateness.text : "");
    late.id = "hs-lateness";
    late.hidden = !d.lateness;
    return [facts, status, late];
  }

  function draw(box, d, T) {
    const list = el("ol", "hs-timeline");
    list.id = "hs-timeline";
    for (const e of d.timeline) {
      const li = el("li", e.status);
      li.append(el("time", null, e.at), " ", el("span", "what", e.text));
      if (e.note) li.append(el("span", "note", e.note));
      list.append(li);
    }
    box.replaceChildren(...top(d, T), el("h3", null, T.hs_timeline), list);
  }

  // what a typed code shows at the kiosk (view.py kiosk_summary): no timeline, no notes
  function summary(box, d, T) {
    const note = el("p", "hs-note", T.kiosk_hs_summary_note);
    note.id = "hs-summary-note";
    box.replaceChildren(...top(d, T), note);
  }

  return { draw: draw, summary: summary };
})();

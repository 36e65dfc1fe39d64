// One office's live view: polls its small JSON every few seconds and updates the figures, queues
// and counters in place. A lost session goes to the login form; a lost server shows a note.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var url = live.dataset.url;
  var period = Number(live.dataset.pollMs) || 3000;
  window.qmsProvinceSite = { view: null, polls: 0 };

  function text(id, value) { document.getElementById(id).textContent = value; }
  function cell(tr, cls, value) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = value;
    tr.appendChild(td);
  }
  function rows(tbodySelector, items, build) {
    var tbody = document.querySelector(tbodySelector);
    var fragment = document.createDocumentFragment();
    items.forEach(function (item) { fragment.appendChild(build(item)); });
    tbody.replaceChildren(fragment);
  }
  function show(v) {
    var presence = document.getElementById("presence");
    presence.textContent = v.presence;
    presence.className = "presence " + (v.online ? "on" : "off");
    text("issued", v.issued_today);
    text("served", v.served_today);
    text("counters-open", v.counters_open);
    text("satisfaction", v.satisfaction);
    text("basis", "· tính trên " + v.basis);
    text("updated", v.updated);
    rows("#queues tbody", v.queues, function (q) {
      var tr = document.createElement("tr");
      tr.dataset.field = q.field;
      cell(tr, "", q.name); cell(tr, "n w", q.waiting); cell(tr, "n l", q.longest_wait);
      return tr;
    });
    rows("#counters tbody", v.counters, function (c) {
      var tr = document.createElement("tr");
      tr.dataset.counter = c.counter;
      cell(tr, "", c.name || c.counter); cell(tr, "s", c.status_vi);
      cell(tr, "o", c.officer || "—"); cell(tr, "t", c.ticket || "—");
      return tr;
    });
  }
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.status === 401) { location.assign("/dang-nhap?next=" + encodeURIComponent(location.pathname)); }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (v) {
        show(v);
        document.getElementById("stale").hidden = true;
        window.qmsProvinceSite.view = v;
        window.qmsProvinceSite.polls += 1;
      })
      .catch(function () { document.getElementById("stale").hidden = false; })
      .finally(function () { window.setTimeout(poll, period); });
  }
  window.setTimeout(poll, period);
})();

// The supervisor's dashboard: queues, counters, officers, health and today's statistics, pushed.
// The longest waits tick here every second; the chart is plain SVG (no network, no library).
"use strict";
(function () {
  const P = window.QmsPages, $ = P.$;
  const config = P.config();
  const T = config.texts;
  const state = { view: null, connected: false };
  window.qmsSupervisor = state;
  const STATUS = { closed: T.counter_closed, open: T.counter_open, paused: T.counter_paused, serving: T.counter_serving };
  const SVG = "http://www.w3.org/2000/svg";
  // rating levels, lowest first: red to green
  const PALETTE = { 2: ["#d64545", "#27ab83"], 3: ["#d64545", "#f0b429", "#27ab83"],
                    4: ["#d64545", "#f0b429", "#3ebd93", "#27ab83"], 5: ["#d64545", "#f57d0d", "#f0b429", "#3ebd93", "#27ab83"] };

  function minutes(s) { return s === null || s === undefined ? "—" : P.duration(T, s); }
  function td(text, cls) { return P.el("td", cls, text === null || text === undefined ? "—" : String(text)); }
  function pill(cls, text) { return P.el("span", "pill " + cls, text); }
  function row(cells) { const tr = P.el("tr"); for (const c of cells) tr.append(c); return tr; }

  function totals(v) {
    const box = $("totals");
    box.replaceChildren();
    const s = v.stats ? v.stats.total : null;
    const items = [
      [T.sup_issued, s ? s.issued : null, "issued"], [T.sup_served, s ? s.served : null, "served"],
      [T.sup_waiting, s ? s.waiting : null, "waiting"], [T.sup_no_show, s ? s.no_show : null, "no_show"],
      [T.sup_avg_wait, s ? minutes(s.avg_wait_s) : null, "avg_wait"],
      [T.sup_avg_service, s ? minutes(s.avg_service_s) : null, "avg_service"],
      [T.sup_rated, s ? s.rated : null, "rated"],
    ];
    for (const [label, value, key] of items) {
      const d = P.el("div", "total");
      d.dataset.total = key;
      d.append(P.el("div", "value", value === null ? "—" : String(value)), P.el("div", "label", label));
      box.append(d);
    }
  }

  function ratings(levels, counts) {
    const bar = P.el("div", "ratings-bar");
    const total = counts.reduce(function (a, b) { return a + b; }, 0);
    const colours = PALETTE[levels.length] || PALETTE[5];
    counts.forEach(function (n, i) {
      if (!n) return;
      const s = P.el("span");
      s.style.width = (100 * n / total) + "%";
      s.style.background = colours[i];
      s.title = levels[i] + ": " + n;
      bar.append(s);
    });
    const cell = P.el("td");
    cell.append(bar, P.el("small", "muted", counts.map(function (n, i) { return levels[i] + " " + n; }).join(" · ")));
    return cell;
  }

  function chart(hours) {
    const box = $("chart");
    box.replaceChildren();
    if (!hours || !hours.length) { box.append(P.el("p", "muted", T.sup_no_data)); return; }
    const max = Math.max(1, ...hours.map(function (h) { return Math.max(h.issued, h.served); }));
    const W = 40, H = 120, pad = 16, slots = Math.max(hours.length, 10);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + (slots * W + 10) + " " + (H + pad * 2));
    svg.setAttribute("preserveAspectRatio", "xMinYMid meet");
    // a grid line at the top: how many the tallest bar is
    const top = document.createElementNS(SVG, "text");
    top.setAttribute("x", 2);
    top.setAttribute("y", pad - 4);
    top.textContent = String(max);
    svg.append(top);
    hours.forEach(function (h, i) {
      const x = 5 + i * W;
      [["bar-issued", h.issued, 4], ["bar-served", h.served, 20]].forEach(function (b) {
        const r = document.createElementNS(SVG, "rect");
        const height = H * b[1] / max;
        r.setAttribute("class", b[0]);
        r.setAttribute("x", x + b[2]);
        r.setAttribute("y", pad + H - height);
        r.setAttribute("width", 14);
        r.setAttribute("height", height);
        const title = document.createElementNS(SVG, "title");
        title.textContent = P.fmt(T.sup_hour_label, { h: h.hour }) + ": " + b[1];
        r.append(title);
        svg.append(r);
      });
      const label = document.createElementNS(SVG, "text");
      label.setAttribute("x", x + 18);
      label.setAttribute("y", pad * 2 + H - 2);
      label.setAttribute("text-anchor", "middle");
      label.textContent = P.fmt(T.sup_hour_label, { h: h.hour });  // "2 giờ"
      svg.append(label);
    });
    svg.dataset.hours = String(hours.length);
    box.append(svg);
  }

  function draw() {
    const v = state.view;
    $("offline").hidden = state.connected && (!v || v.online);
    if (!v) return;
    $("day").textContent = v.day_text || "";  // dd/mm/yyyy, from the server
    $("stats-error").textContent = v.stats_error || "";
    totals(v);

    const fields = $("fields");
    fields.replaceChildren();
    for (const f of v.fields) {
      const w = f.waiting === null || f.waiting === undefined ? "—" : f.waiting + (f.priority_waiting ? " (" + f.priority_waiting + "★)" : "");
      const tr = row([td(f.name), td(w, "num w"), td("", "num longest"), td(f.served, "num served"),
                      td(minutes(f.avg_wait_s), "num"), td(minutes(f.est_wait_s), "num")]);
      tr.dataset.field = f.id;
      if (f.oldest_waiting && f.waiting) tr.dataset.oldest = f.oldest_waiting;
      fields.append(tr);
    }
    tick();

    const counters = $("counters");
    counters.replaceChildren();
    for (const c of v.counters) {
      const agent = P.el("td");
      if (c.agent) agent.append(pill(c.agent_status, c.agent + " · " + (c.agent_status === "online" ? T.online : T.offline_word)));
      else agent.textContent = T.sup_no_agent;
      if (c.consoles) agent.append(" ", pill("open", T.sup_console_open));
      const tr = row([td(c.name), P.el("td"), td(c.number, "num number"), td(c.officer), agent]);
      tr.children[1].append(pill(c.status, STATUS[c.status] || c.status));
      tr.dataset.counter = c.id;
      counters.append(tr);
    }

    const officers = $("officers");
    officers.replaceChildren();
    const counterNames = {};
    for (const c of v.counters) counterNames[c.id] = c.name;
    for (const o of (v.stats ? v.stats.officers : [])) {
      // a call that named nobody (a keypad, no officer configured) is its counter's officer's
      const who = o.officer || P.fmt(T.sup_counter_officer, { counter: counterNames[o.counter] || o.counter || "?" });
      const tr = row([td(who), td(o.served, "num served"), td(minutes(o.avg_wait_s), "num"),
                      td(minutes(o.avg_service_s), "num"), ratings(v.levels, o.ratings)]);
      tr.dataset.officer = o.officer;
      officers.append(tr);
    }
    chart(v.stats ? v.stats.by_hour : null);

    // today's bookings and remote numbers (issue 12), where the site takes them
    $("bookings-panel").hidden = !v.bookings;
    const bookings = $("bookings");
    bookings.replaceChildren();
    const n = function (x) { return x === null || x === undefined ? "—" : String(x); };
    for (const b of v.bookings || []) {
      const tr = row([td(b.name), td(n(b.booked), "num booked"), td(n(b.checked_in), "num checked-in"),
                      td(n(b.pending), "num pending"), td(n(b.no_show), "num no-show"),
                      td(n(b.remote_awaiting), "num remote-awaiting")]);
      tr.dataset.field = b.id;
      bookings.append(tr);
    }

    const health = $("health");
    health.replaceChildren();
    health.append(healthRow("core", T.sup_core, v.core, ""));
    for (const w of v.webs) health.append(healthRow("web/" + w.id, w.id, w.status, ""));
    for (const d of v.displays) health.append(healthRow("display/" + d.id, "TV " + d.id, d.status, ""));
    for (const a of v.agents) {
      const open = a.ports.filter(function (p) { return p.open; }).length;
      const online = a.devices.filter(function (d) { return d.device === "online"; }).length;
      const errors = a.devices.reduce(function (n, d) { return n + (d.errors || 0); }, 0);
      const bad = a.ports.filter(function (p) { return p.error; }).map(function (p) { return p.port + ": " + p.error; });
      const detail = open + "/" + a.ports.length + " " + T.sup_ports + " · " + online + "/" + a.devices.length + " " +
        T.sup_devices + (errors ? " · " + errors + " " + T.sup_errors : "") + (bad.length ? " · " + bad.join("; ") : "");
      health.append(healthRow("agent/" + a.id, a.id, a.status, detail));
    }
    notify(v.notify);
  }

  // "zalo" → "Zalo", "webhook:0" → "Webhook 1"
  function routeName(route) {
    if (route === "zalo") return "Zalo";
    if (route === "sms") return "SMS";
    const m = /^webhook:(\d+)$/.exec(route || "");
    return m ? "Webhook " + (Number(m[1]) + 1) : String(route);
  }

  // the notifier's messages to citizens today, from its retained notify/stats
  function notify(n) {
    if (!n || !$("notify")) return;
    const up = n.status === "online";
    const status = $("notify-status");
    status.replaceChildren(pill(up ? "online" : "offline", up ? T.sup_notify_running : T.sup_notify_lost));
    $("notify-quota-line").hidden = n.quota_left === null || n.quota_left === undefined;
    $("notify-quota").textContent = n.quota_left === null || n.quota_left === undefined ? "—" : String(n.quota_left);
    const channels = $("notify-channels");
    channels.replaceChildren();
    if (!n.channels.length) {
      const tr = row([td(T.sup_notify_no_stats, "muted")]);
      tr.children[0].colSpan = 6;
      channels.append(tr);
    }
    for (const c of n.channels) {
      const tr = row([td(routeName(c.route)), td(c.sent, "num sent"), td(c.delivered, "num delivered"),
                      td(c.failed, "num failed"), td(c.dropped, "num dropped"), td(c.pending, "num pending")]);
      tr.dataset.route = c.route;
      channels.append(tr);
    }
    const failures = $("notify-failures");
    failures.replaceChildren();
    if (!n.failures.length) {
      const tr = row([td(T.sup_notify_no_failures, "muted")]);
      tr.children[0].colSpan = 5;
      failures.append(tr);
    }
    for (const f of n.failures) {
      failures.append(row([td(f.time), td(routeName(f.channel)), td(T["notify_kind_" + f.kind] || f.kind),
                           td(f.phone), td(f.reason, "muted")]));
    }
  }

  function healthRow(key, name, status, detail) {
    const tr = row([td(name), P.el("td"), td(detail, "muted")]);
    tr.children[1].append(pill(status, status === "online" ? T.online : status === "offline" ? T.offline_word : status));
    tr.dataset.health = key;
    return tr;
  }

  function tick() {
    const now = Date.now();
    for (const tr of document.querySelectorAll("#fields tr")) {
      const cell = tr.querySelector(".longest");
      cell.textContent = tr.dataset.oldest ? P.duration(T, (now - Date.parse(tr.dataset.oldest)) / 1000) : "—";
    }
  }
  setInterval(tick, 1000);

  QmsLive.connect(config.ws, {
    onMessage: function (msg) { if (msg.type === "view") { state.view = msg.view; draw(); } },
    onStatus: function (up) {
      state.connected = up;
      draw();
      if (!up) P.checkSession();
    },
  });
})();

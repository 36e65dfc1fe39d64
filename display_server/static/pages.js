// What the kiosk, tracking, console, rating and supervisor pages share: small DOM helpers, text
// formatting, the clock in the site's time zone, and JSON calls to the server's APIs.
"use strict";
window.QmsPages = (function () {
  function $(id) { return document.getElementById(id); }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // "Có {n} người" with {n: 3}
  function fmt(template, values) {
    return String(template).replace(/\{(\w+)\}/g, function (m, k) { return k in values ? values[k] : m; });
  }

  // T[key + "_one"] for exactly one ("1 person"), else T[key]
  function plural(T, key, n) { return n === 1 && (key + "_one") in T ? T[key + "_one"] : T[key]; }

  function span(T, seconds) {
    const m = Math.max(1, Math.ceil(seconds / 60));
    if (m < 60) return fmt(T.minutes, { m: m });
    return m % 60 ? fmt(T.hours_minutes, { h: Math.floor(m / 60), m: m % 60 }) : fmt(T.hours, { h: m / 60 });
  }

  // the two lines about a wait, as the printed ticket says them
  function waitLines(T, ahead, est) {
    if (ahead === null || ahead === undefined) return ["", ""];
    const people = ahead === 0 ? T.ticket_next : fmt(plural(T, "ticket_ahead", ahead), { n: ahead });
    if (!est || ahead === 0) return [people, ""];
    return [people, fmt(T.ticket_wait, { span: span(T, est) })];
  }

  function clock(tz) {
    const f = new Intl.DateTimeFormat("vi-VN", { timeZone: tz, hour: "2-digit", minute: "2-digit", hour12: false });
    return function (date) { return f.format(date || new Date()); };
  }

  // with its units, as people say it: "4 phút 12 giây", "1 giờ 5 phút", "40 giây"
  function duration(T, seconds) {
    seconds = Math.max(0, Math.round(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (h) return fmt(T.dur_h, { n: h }) + (m ? " " + fmt(T.dur_m, { n: m }) : "");
    return (m ? fmt(T.dur_m, { n: m }) + " " : "") + fmt(T.dur_s, { n: s });
  }

  function requestId() {
    if (window.crypto && crypto.getRandomValues) {
      const b = new Uint8Array(12);
      crypto.getRandomValues(b);
      return Array.from(b, function (x) { return x.toString(16).padStart(2, "0"); }).join("");
    }
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // POST JSON; resolves to {status, body} (body {ok, error: {code, message}} on failure), never rejects
  async function post(url, body, csrf) {
    const headers = { "Content-Type": "application/json" };
    if (csrf) headers["X-CSRF-Token"] = csrf;
    try {
      const resp = await fetch(url, { method: "POST", headers: headers, body: JSON.stringify(body),
                                      credentials: "same-origin" });
      let data;
      try { data = await resp.json(); } catch (e) { data = { ok: false, error: { code: "http", message: resp.statusText } }; }
      return { status: resp.status, body: data };
    } catch (e) {
      return { status: 0, body: { ok: false, error: { code: "network", message: null } } };
    }
  }

  // a kiosk's on-screen keys (templates/_osk.html) typing into `input`: at most `max` characters;
  // `changed` after each key
  function keys(box, input, max, changed) {
    box.addEventListener("click", function (e) {
      const key = e.target.closest("button");
      if (!key || !box.contains(key)) return;
      if (key.dataset.key !== undefined) {
        if (input.value.length < max) input.value += key.dataset.key;
      } else if (key.dataset.osk === "back") {
        input.value = input.value.slice(0, -1);
      } else if (key.dataset.osk === "clear") {
        input.value = "";
      } else {
        return;
      }
      if (changed) changed();
    });
  }

  function config() { return JSON.parse($("page-config").textContent); }

  // a logged-in page whose session ended (logged out elsewhere, expired, the server restarted)
  function toLogin() { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
  function checkSession(onEnded) {
    fetch("/api/me", { credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { if (onEnded) onEnded(); toLogin(); }
    }).catch(function () { /* the server is away: the live feed reconnects and we look again */ });
  }

  return { $: $, el: el, fmt: fmt, plural: plural, span: span, waitLines: waitLines, clock: clock, duration: duration,
           requestId: requestId, post: post, keys: keys, config: config, toLogin: toLogin, checkSession: checkSession };
})();

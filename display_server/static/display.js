// The waiting-room TV: draws the view the server pushes and plays each call's announcement.
// Announcements queue: a new call waits until the one playing has finished.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const T = config.texts;
  const $ = function (id) { return document.getElementById(id); };

  // what tests and the curious can look at: window.qmsDisplay
  const state = { connected: false, view: null, latestSeq: null, played: [], blocked: false, queue: [] };
  window.qmsDisplay = state;

  // ------------------------------------------------------------------ drawing
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function counterState(c) {
    if (c.status === "paused") return T.counter_paused;
    if (c.status === "closed") return T.counter_closed;
    return T.counter_open;
  }

  function draw(view) {
    $("office").textContent = view.office;
    document.title = view.office;

    const counters = $("counters");
    counters.replaceChildren();
    for (const c of view.counters) {
      const tile = el("div", "counter " + c.status);
      tile.dataset.counter = c.id;
      tile.append(el("span", "counter-name", c.name));
      if (c.number) tile.append(el("span", "counter-number", c.number));
      if (!c.number || c.status === "paused") tile.append(el("span", "counter-state", counterState(c)));
      counters.append(tile);
    }

    const latest = $("latest");
    if (view.latest) {
      latest.classList.remove("empty");
      $("latest-number").textContent = view.latest.number;
      $("latest-counter").textContent = T.to_counter + " " + view.latest.counter_name;
      if (view.latest.seq !== state.latestSeq) state.latestAt = performance.timeOrigin + performance.now();
      if (state.latestSeq !== null && view.latest.seq !== state.latestSeq) blink();
      state.latestSeq = view.latest.seq;
    } else {
      latest.classList.add("empty");
      $("latest-number").textContent = "—";
      $("latest-counter").textContent = T.no_calls;
      state.latestSeq = state.latestSeq === null ? -1 : state.latestSeq;
    }

    const recent = $("recent");
    recent.replaceChildren();
    for (const call of view.recent) {
      const li = el("li");
      li.append(el("span", "n", call.number), el("span", "c", call.counter_name));
      recent.append(li);
    }

    const queues = $("queues");
    queues.replaceChildren();
    for (const q of view.queues) {
      const li = el("li");
      li.dataset.field = q.field;
      li.append(el("span", "f", q.name), el("span", "w", String(q.waiting)));
      queues.append(li);
    }
    showOnline();
  }

  let blinkTimer = null;
  function blink() {
    const latest = $("latest");
    latest.classList.remove("blink");
    void latest.offsetWidth;  // restart the animation
    latest.classList.add("blink");
    clearTimeout(blinkTimer);
    blinkTimer = setTimeout(function () { latest.classList.remove("blink"); }, config.blink_s * 1000);
  }

  function showOnline() {
    const ok = state.connected && (!state.view || state.view.online);
    $("offline").hidden = ok;
  }

  // ------------------------------------------------------------------ clock
  const timeFmt = new Intl.DateTimeFormat("vi-VN", { timeZone: config.timezone, hour: "2-digit", minute: "2-digit", hour12: false });
  const partsFmt = new Intl.DateTimeFormat("en-US", { timeZone: config.timezone, weekday: "short", day: "2-digit", month: "2-digit", year: "numeric" });
  const weekdays = T.weekdays.split(",");
  const weekdayIndex = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };
  function tick() {
    const now = new Date();
    $("clock-time").textContent = timeFmt.format(now);
    const p = {};
    for (const part of partsFmt.formatToParts(now)) p[part.type] = part.value;
    $("clock-date").textContent = weekdays[weekdayIndex[p.weekday]] + ", " + p.day + "/" + p.month + "/" + p.year;
  }
  tick();
  setInterval(tick, 1000);

  // ------------------------------------------------------------------ announcements
  // One audio element plays the queue clip by clip; `ended` starts the next one, so nothing is cut off.
  const audio = new Audio();
  audio.preload = "auto";
  let current = null;  // {a: announcement, i: clip index}

  function log(event, extra) {
    const entry = Object.assign({ event: event, t: performance.now() }, extra || {});
    state.played.push(entry);
    console.info("qms-display " + event + " " + (entry.number || "") + " " + (entry.src || ""));
  }

  function announce(a) {
    log("queued", { seq: a.seq, number: a.number, recall: a.recall });
    state.queue.push(a);
    if (!current) next();
  }

  function next() {
    current = null;
    if (state.blocked || state.queue.length === 0) return;
    current = { a: state.queue.shift(), i: 0 };
    log("announce", { seq: current.a.seq, number: current.a.number, recall: current.a.recall });
    $("latest-text").textContent = current.a.text;
    playClip();
  }

  function playClip() {
    const a = current.a;
    if (current.i >= a.clips.length) {
      log("done", { seq: a.seq, number: a.number });
      next();
      return;
    }
    const src = a.clips[current.i];
    audio.src = src;
    const p = audio.play();
    log("start", { seq: a.seq, number: a.number, src: src });
    if (p && p.catch) {
      p.catch(function (err) {
        if (err && err.name === "NotAllowedError") {
          // the browser wants a gesture first: keep the clip, show the button
          log("blocked", { seq: a.seq, number: a.number, src: src });
          state.blocked = true;
          $("sound-on").hidden = false;
        }
        // a clip that cannot load fires the audio element's "error" event: clipFailed skips it
      });
    }
  }

  function clipFailed() {
    if (!current) return;
    log("error", { seq: current.a.seq, number: current.a.number, src: current.a.clips[current.i] });
    current.i += 1;
    playClip();
  }

  audio.addEventListener("ended", function () {
    if (!current) return;
    log("end", { seq: current.a.seq, number: current.a.number, src: current.a.clips[current.i] });
    current.i += 1;
    playClip();
  });
  audio.addEventListener("error", clipFailed);

  $("sound-on").addEventListener("click", function () {
    state.blocked = false;
    $("sound-on").hidden = true;
    if (current) playClip();
    else next();
  });

  // ------------------------------------------------------------------ feed
  QmsLive.connect(config.ws, {
    onStatus: function (connected) {
      state.connected = connected;
      showOnline();
    },
    onMessage: function (msg, feed) {
      if (msg.type === "view") {
        state.view = msg.view;
        state.v = msg.v;
        draw(msg.view);
      } else if (msg.type === "patch") {
        // only what changed since the version this page shows
        if (!state.view || msg.from !== state.v) { feed.restart(); return; }  // out of step: start over
        const view = Object.assign({}, state.view);
        for (const key of Object.keys(msg)) {
          if (key !== "type" && key !== "from" && key !== "v" && key !== "counters_changed") view[key] = msg[key];
        }
        if (msg.counters_changed) {
          const byId = {};
          for (const c of msg.counters_changed) byId[c.id] = c;
          view.counters = view.counters.map(function (c) { return byId[c.id] || c; });
        }
        state.view = view;
        state.v = msg.v;
        draw(view);
      } else if (msg.type === "announce") {
        announce(msg);
      }
    },
  }, { silenceMs: (config.keepalive_s * 2 + 10) * 1000 });
})();

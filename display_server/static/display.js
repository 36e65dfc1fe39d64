// The waiting-room TV: draws the view the server pushes and plays the calls' announcements.
// A new call waits until the clip playing has finished; announce_plan.js decides what is said.
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("page-config").textContent);
  const T = config.texts;
  const $ = function (id) { return document.getElementById(id); };

  // what tests and the curious can look at: window.qmsDisplay
  const state = { connected: false, view: null, latestSeq: null, newestShown: -Infinity, played: [], blocked: false };
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
    drawCall();  // first: what the TV is for

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

  // The big box and its caption show one call, from one place: the call whose clip is playing,
  // else the view's latest call (gone once its ticket has left the counter). Its caption is that
  // call's own announcement text, never another's.
  function shownCall() {
    if (playing && !state.blocked) {
      const a = playing.a;
      return { seq: a.seq, number: a.number, counter_name: a.counter_name, text: a.text };
    }
    const latest = state.view && state.view.latest;
    if (!latest) return null;
    return { seq: latest.seq, number: latest.number, counter_name: latest.counter_name,
             text: spokenText.get(latest.seq) || "" };
  }

  function drawCall() {
    const call = shownCall();
    const latest = $("latest");
    latest.classList.toggle("empty", !call);
    $("latest-number").textContent = call ? call.number : "—";
    $("latest-counter").textContent = call ? T.to_counter + " " + call.counter_name
      : (state.view && state.view.recent.length ? "" : T.no_calls);
    $("latest-text").textContent = call ? call.text : "";
    $("latest-badge").hidden = !(call && call.appointment);
    latest.dataset.seq = call ? String(call.seq) : "";
    if (call && call.seq !== state.latestSeq) {
      state.latestAt = performance.timeOrigin + performance.now();
      if (state.latestSeq !== null && call.seq > state.newestShown) blink();
      state.newestShown = Math.max(state.newestShown, call.seq);
    }
    state.latestSeq = call ? call.seq : -1;

    // the last calls: the view's, and its latest while the box still says an earlier one
    const view = state.view;
    const recent = $("recent");
    recent.replaceChildren();
    if (!view) return;
    const lines = (view.latest ? [view.latest] : []).concat(view.recent)
      .filter(function (c) { return !call || c.number !== call.number; })
      .slice(0, config.recent_calls);
    for (const c of lines) {
      const li = el("li");
      li.append(el("span", "n", c.number), el("span", "c", c.counter_name));
      if (c.appointment) li.append(el("span", "badge-appointment", T.appointment_badge));
      recent.append(li);
    }
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
  // One audio element plays the plan clip by clip; `ended` starts the next one, so nothing is cut
  // off. What to say is QmsPlan.plan's (announce_plan.js): when calls come quickly they are said
  // short and the oldest left out, so the voice stays within a few seconds of the newest call.
  const audio = new Audio();
  audio.preload = "auto";
  let items = [];  // the rest of the plan: [{a: announcement, src, i}]
  let playing = null;  // the item whose clip plays now
  let waiting = [];  // announcements that arrived since the plan was made
  const spokenText = new Map();  // seq → its announcement's text, for the box's caption

  function log(event, extra) {
    const entry = Object.assign({ event: event, t: performance.now() }, extra || {});
    state.played.push(entry);
    console.info("qms-display " + event + " " + (entry.number || "") + " " + (entry.src || ""));
  }

  function announce(a) {
    a.at = performance.now();
    log("queued", { seq: a.seq, number: a.number, recall: a.recall });
    spokenText.set(a.seq, a.text);
    if (spokenText.size > 100) spokenText.delete(spokenText.keys().next().value);
    waiting.push(a);
    if (!playing) advance(null);
  }

  // The clip of `ended` has finished (null: the TV was silent): plan again if calls came, then
  // play the next clip.
  function advance(ended) {
    if (waiting.length) {
      const p = QmsPlan.plan(items, ended ? ended.a : null, waiting,
        { now: performance.now(), silent: !ended, maxDelayMs: config.max_delay_s * 1000, chime: config.chime });
      waiting = [];
      items = p.items;
      for (const a of p.left) log("left", { seq: a.seq, number: a.number });
    }
    if (ended && !items.some(function (it) { return it.a === ended.a; })) {
      log("done", { seq: ended.a.seq, number: ended.a.number });
    }
    playing = items.shift() || null;
    if (playing && (!ended || playing.a !== ended.a)) {
      log("announce", { seq: playing.a.seq, number: playing.a.number, recall: playing.a.recall });
    }
    drawCall();
    if (playing) playClip();
  }

  function playClip() {
    const it = playing;
    audio.src = it.src;
    const p = audio.play();
    log("start", { seq: it.a.seq, number: it.a.number, src: it.src });
    if (p && p.catch) {
      p.catch(function (err) {
        if (err && err.name === "NotAllowedError" && playing === it) {
          // the browser wants a gesture first: keep the clip, show the button
          log("blocked", { seq: it.a.seq, number: it.a.number, src: it.src });
          state.blocked = true;
          $("sound-on").hidden = false;
          drawCall();
        }
        // a clip that cannot load fires the audio element's "error" event: it is skipped
      });
    }
  }

  audio.addEventListener("ended", function () {
    if (!playing || state.blocked) return;
    log("end", { seq: playing.a.seq, number: playing.a.number, src: playing.src });
    advance(playing);
  });
  audio.addEventListener("error", function () {
    if (!playing || state.blocked) return;
    log("error", { seq: playing.a.seq, number: playing.a.number, src: playing.src });
    advance(playing);
  });

  $("sound-on").addEventListener("click", function () {
    state.blocked = false;
    $("sound-on").hidden = true;
    if (playing) playClip();
    else advance(null);
    drawCall();
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

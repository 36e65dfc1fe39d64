// What the TV says next: a pure function of the calls waiting and of the call being said, so its
// rules are tested on their own (tests/test_display_browser.py::test_the_planner_*).
//
// The rules, checked each time a clip ends while calls wait, and when a call comes to a silent TV:
// 1. Of the calls waiting, only the newest of each counter is said: a counter that has called
//    again has moved on (its earlier call stays on screen).
// 2. A call that comes to a silent TV, alone, gets the full announcement: chime, the phrases,
//    `repeat` times.
// 3. Calls that had to wait are said once each, short (number, counter phrase), with no chime
//    between them. A chime starts a batch only when the TV was silent.
// 4. The call being said is finished short: its number and counter phrase if not said yet; no
//    intro, no repeat.
// 5. The newest call must start within maxDelayMs of its arrival. Older ones are said before it
//    only while that holds; the others are left out (they stay on screen). Calls planned but not
//    begun are planned again with each new one, so at one call a second the voice never falls
//    more than maxDelayMs behind (only a call that comes during a full announcement's intro,
//    which is never cut off, can wait a little longer).
"use strict";
(function (global) {
  const DEFAULT_CLIP_S = 2;  // a clip whose length the server did not know

  function item(a, src, i) {
    return { a: a, src: src, i: i };
  }

  function full(a) {
    return a.clips.map(function (src, i) { return item(a, src, i); });
  }

  function short(a) {
    return a.short.map(function (src) { return item(a, src, -1); });
  }

  function lengthMs(items) {
    let s = 0;
    for (const it of items) {
      const known = it.a.seconds && it.a.seconds[it.src];
      s += typeof known === "number" ? known : DEFAULT_CLIP_S;
    }
    return s * 1000;
  }

  // rest: what is left of the plan being played ([] when the TV is silent); started: the call of
  // the clip that has just ended (null when silent); waiting: announcements that arrived since
  // (each with `at`, ms). Returns {items: [{a, src}], left: [announcements not to be said]}.
  function plan(rest, started, waiting, opts) {
    const maxDelay = opts.maxDelayMs;
    const chime = opts.chime;
    // calls planned but not begun count as waiting again, in their order of arrival
    const queued = [];
    for (const it of rest) {
      if (it.a !== started && queued.indexOf(it.a) < 0) queued.push(it.a);
    }
    const all = queued.concat(waiting);
    const newestOf = {};
    for (const a of all) newestOf[a.counter] = a;
    const left = all.filter(function (a) { return newestOf[a.counter] !== a; });
    let calls = all.filter(function (a) { return newestOf[a.counter] === a; });

    if (!started && calls.length === 1 && opts.silent) {
      return { items: full(calls[0]), left: left };
    }
    // rule 4: of the call being said, what a listener still needs
    const finish = started
      ? rest.filter(function (it) { return it.a === started && (it.i < 0 || (it.i < started.must && started.short.indexOf(it.src) >= 0)); })
      : [];
    if (calls.length === 0) return { items: finish, left: left };

    const newest = calls[calls.length - 1];
    const chosen = [newest];
    let startsAt = opts.now + lengthMs(finish);  // when the newest begins
    for (let k = calls.length - 2; k >= 0; k--) {
      const extra = lengthMs(short(calls[k]));
      if (startsAt + extra > newest.at + maxDelay) break;
      chosen.unshift(calls[k]);
      startsAt += extra;
    }
    for (const a of calls) if (chosen.indexOf(a) < 0) left.push(a);
    let items = finish.slice();
    if (!started && opts.silent && chime) items.push(item(chosen[0], chime, -1));
    for (const a of chosen) items = items.concat(short(a));
    return { items: items, left: left };
  }

  global.QmsPlan = { plan: plan };
})(window);

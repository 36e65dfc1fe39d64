// A live feed from the server over a WebSocket that reconnects by itself, with backoff.
// Every live page uses it: QmsLive.connect(path, {onMessage(msg, feed), onStatus(connected)});
// feed.restart() drops the connection and opens a new one (a page that lost its place).
// The server speaks at least every keepalive period; silence longer than that means a dead link.
"use strict";
window.QmsLive = (function () {
  function connect(path, handlers, options) {
    const opts = Object.assign({ minDelay: 500, maxDelay: 10000, silenceMs: 40000 }, options || {});
    let delay = opts.minDelay;
    let ws = null;
    let watchdog = null;
    const feed = { restart: function () { if (ws) ws.close(); } };

    function url() {
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
    }
    function arm() {
      clearTimeout(watchdog);
      watchdog = setTimeout(function () { if (ws) ws.close(); }, opts.silenceMs);
    }
    function open() {
      ws = new WebSocket(url());
      ws.onopen = function () {
        delay = opts.minDelay;
        arm();
        if (handlers.onStatus) handlers.onStatus(true);
      };
      ws.onmessage = function (event) {
        arm();
        let msg;
        try { msg = JSON.parse(event.data); } catch (e) { return; }
        handlers.onMessage(msg, feed);
      };
      ws.onclose = function () {
        clearTimeout(watchdog);
        ws = null;
        if (handlers.onStatus) handlers.onStatus(false);
        const wait = delay * (0.8 + Math.random() * 0.4);  // jitter: TVs do not reconnect in lockstep
        delay = Math.min(delay * 2, opts.maxDelay);
        setTimeout(open, wait);
      };
      ws.onerror = function () { /* onclose follows and reconnects */ };
    }
    open();
    return feed;
  }
  return { connect: connect };
})();

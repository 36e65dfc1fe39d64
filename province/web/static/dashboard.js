// The dashboard keeps itself current: every 15 s it fetches this same page and swaps the table's
// body and totals in place (no reload, no flicker). A failed fetch leaves the last figures.
(function () {
  "use strict";
  var PERIOD_MS = 15000;
  function swap(doc, selector) {
    var fresh = doc.querySelector(selector);
    var old = document.querySelector(selector);
    if (fresh && old) { old.replaceWith(fresh); }
  }
  function refresh() {
    fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        // the session ended: the page itself goes to the login form
        if (r.redirected) { location.reload(); }
        if (r.redirected || !r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        swap(doc, "#offices tbody");
        swap(doc, "#offices tfoot");
        swap(doc, "#summary");
      })
      .catch(function () { /* keep what is shown; the next round tries again */ });
  }
  window.setInterval(refresh, PERIOD_MS);
})();

// The A5 receipt: the browser prints it (to paper, or to PDF); opened from the console with
// ?in=1 it asks to print at once.
"use strict";
(function () {
  document.getElementById("print").addEventListener("click", function () { window.print(); });
  if (document.body.classList.contains("auto-print")) window.addEventListener("load", function () { window.print(); });
})();

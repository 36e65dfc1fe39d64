// The reports' pages: the picker shows the inputs of the chosen kind of period (a day in the
// period, or a custom range), and the printed page's button opens the print dialog.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const period = document.getElementById("period");
  if (period) {
    const show = () => {
      const custom = period.value === "custom";
      for (const el of document.querySelectorAll(".for-custom")) el.hidden = !custom;
      for (const el of document.querySelectorAll(".for-named")) el.hidden = custom;
      // only the inputs of the chosen kind go with the form
      for (const id of ["from", "to"]) document.getElementById(id).disabled = !custom;
      document.getElementById("date").disabled = custom;
    };
    period.addEventListener("change", show);
    show();
  }
  const print = document.getElementById("print-now");
  if (print) print.addEventListener("click", () => window.print());
});
